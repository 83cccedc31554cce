//! The two time arguments of `reset-offsets`: an ISO-8601 date-time
//! (`2026-11-24T10:00:00.000`, UTC unless it carries `Z` or `±HH:MM`) and
//! an ISO-8601 duration of the `PnDTnHnMnS` form.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} `{s}`"));
    }
    s.parse().map_err(|_| format!("bad {what} `{s}`"))
}

/// Milliseconds since the epoch of an ISO-8601 date-time.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not a date-time like 2026-11-24T10:00:00.000");
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-');
    let (y, mo, day) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(y), Some(m), Some(dd), None) => (num(y, "year")?, num(m, "month")?, num(dd, "day")?),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    // Split off the zone: Z, +HH:MM or -HH:MM.
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let z = z.get(1..).unwrap_or("");
        let (hh, mm) = z.split_once(':').unwrap_or((z, "0"));
        (
            t,
            sign * (num(hh, "zone hour")? * 60 + num(mm, "zone minute")?),
        )
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let (h, mi, sec) = match (t.next(), t.next(), t.next(), t.next()) {
        (Some(h), Some(m), Some(sec), None) => {
            (num(h, "hour")?, num(m, "minute")?, num(sec, "second")?)
        }
        (Some(h), Some(m), None, None) => (num(h, "hour")?, num(m, "minute")?, 0),
        _ => return Err(bad()),
    };
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let ms = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        num(&digits, "milliseconds")?
    };
    let days = days_from_civil(y, mo, day);
    let secs = days * 86_400 + h * 3_600 + mi * 60 + sec - offset_min * 60;
    Ok(secs * 1_000 + ms)
}

/// Milliseconds of an ISO-8601 duration such as `P1DT2H30M` or `PT15M`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not a duration like P1DT2H30M");
    let body = s.strip_prefix('P').ok_or_else(bad)?;
    let (days_part, time_part) = body.split_once('T').unwrap_or((body, ""));
    let mut total = 0i64;
    let mut add = |part: &str, units: &[(char, i64)]| -> Result<(), String> {
        let mut n = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                n.push(c);
                continue;
            }
            let unit = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?;
            total = total.saturating_add(num(&n, "duration")?.saturating_mul(unit.1));
            n.clear();
        }
        if n.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    add(days_part, &[('D', 86_400_000), ('W', 7 * 86_400_000)])?;
    add(time_part, &[('H', 3_600_000), ('M', 60_000), ('S', 1_000)])?;
    if body.is_empty() || body == "T" {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Ok(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z"), Ok(1_000));
        assert_eq!(
            parse_datetime("2026-11-24T10:00:00.000"),
            Ok(1_795_514_400_000)
        );
        assert_eq!(
            parse_datetime("2026-11-24T12:00:00+02:00"),
            parse_datetime("2026-11-24T10:00:00")
        );
        assert!(parse_datetime("2026-13-01T00:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT15M"), Ok(900_000));
        assert_eq!(parse_duration("P1DT2H30M"), Ok(95_400_000));
        assert_eq!(parse_duration("P2D"), Ok(172_800_000));
        assert!(parse_duration("P").is_err());
        assert!(parse_duration("1H").is_err());
        assert!(parse_duration("PT5X").is_err());
    }
}
