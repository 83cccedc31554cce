//! A small regular-expression matcher for `patternProperties`, which the
//! rules use to find the schema a property name falls under.
//!
//! It supports what such patterns use in practice: `^` and `$` anchors,
//! literals, `.`, `\d \w \s` (and negations), escaped punctuation, character
//! classes with ranges, and the quantifiers `* + ? {n} {n,} {n,m}`. Groups
//! and alternation are not supported: such a pattern (or one that takes too
//! much work to match) is taken to match, so the property is compared with
//! the pattern's schema rather than silently treated as uncovered.

/// Longest pattern compiled, in characters.
const MAX_PATTERN: usize = 512;
/// Most backtracking steps spent on one match.
const MAX_STEPS: usize = 20_000;

#[derive(Debug)]
enum Item {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

impl Item {
    fn matches(&self, c: char) -> bool {
        match self {
            Item::Range(lo, hi) => (*lo..=*hi).contains(&c),
            Item::Digit(neg) => c.is_ascii_digit() != *neg,
            Item::Word(neg) => (c.is_alphanumeric() || c == '_') != *neg,
            Item::Space(neg) => c.is_whitespace() != *neg,
        }
    }
}

#[derive(Debug)]
enum Atom {
    Any,
    /// A class: negated, and its items.
    Class(bool, Vec<Item>),
}

impl Atom {
    fn literal(c: char) -> Atom {
        Atom::Class(false, vec![Item::Range(c, c)])
    }

    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Any => c != '\n',
            Atom::Class(neg, items) => items.iter().any(|i| i.matches(c)) != *neg,
        }
    }
}

#[derive(Debug)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

#[derive(Debug)]
struct Pattern {
    anchored_start: bool,
    anchored_end: bool,
    pieces: Vec<Piece>,
}

/// Whether `pattern` matches somewhere in `text` (as Java's `find`).
pub(super) fn finds(pattern: &str, text: &str) -> bool {
    match compile(pattern) {
        Some(p) => p.finds(text).unwrap_or(true),
        None => true,
    }
}

fn compile(pattern: &str) -> Option<Pattern> {
    if pattern.chars().count() > MAX_PATTERN {
        return None;
    }
    let mut chars = pattern.chars().peekable();
    let anchored_start = chars.next_if_eq(&'^').is_some();
    let mut pieces = Vec::new();
    let mut anchored_end = false;
    while let Some(c) = chars.next() {
        let atom = match c {
            '$' if chars.peek().is_none() => {
                anchored_end = true;
                break;
            }
            '.' => Atom::Any,
            '\\' => escape(chars.next()?)?,
            '[' => class(&mut chars)?,
            '(' | ')' | '|' | '{' | '}' | '*' | '+' | '?' | '^' | '$' => return None,
            c => Atom::literal(c),
        };
        let (min, max) = quantifier(&mut chars)?;
        pieces.push(Piece { atom, min, max });
    }
    Some(Pattern {
        anchored_start,
        anchored_end,
        pieces,
    })
}

type Chars<'p> = std::iter::Peekable<std::str::Chars<'p>>;

fn escape(c: char) -> Option<Atom> {
    Some(match class_escape(c) {
        Some(item) => Atom::Class(false, vec![item]),
        None if c.is_alphanumeric() => return None,
        None => Atom::literal(c),
    })
}

fn class_escape(c: char) -> Option<Item> {
    Some(match c {
        'd' => Item::Digit(false),
        'D' => Item::Digit(true),
        'w' => Item::Word(false),
        'W' => Item::Word(true),
        's' => Item::Space(false),
        'S' => Item::Space(true),
        _ => return None,
    })
}

fn class(chars: &mut Chars<'_>) -> Option<Atom> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut items = Vec::new();
    loop {
        let c = chars.next()?;
        let lo = match c {
            ']' => return Some(Atom::Class(negated, items)),
            '\\' => {
                let e = chars.next()?;
                if let Some(item) = class_escape(e) {
                    items.push(item);
                    continue;
                }
                if e.is_alphanumeric() {
                    return None;
                }
                e
            }
            c => c,
        };
        if chars.next_if_eq(&'-').is_some() {
            match chars.next()? {
                ']' => {
                    items.push(Item::Range(lo, lo));
                    items.push(Item::Range('-', '-'));
                    return Some(Atom::Class(negated, items));
                }
                '\\' => return None,
                hi => items.push(Item::Range(lo, hi)),
            }
        } else {
            items.push(Item::Range(lo, lo));
        }
    }
}

fn quantifier(chars: &mut Chars<'_>) -> Option<(usize, usize)> {
    let bounds = match chars.peek() {
        Some('*') => (0, usize::MAX),
        Some('+') => (1, usize::MAX),
        Some('?') => (0, 1),
        Some('{') => {
            chars.next();
            return braces(chars);
        }
        _ => return Some((1, 1)),
    };
    chars.next();
    chars.next_if_eq(&'?');
    Some(bounds)
}

fn braces(chars: &mut Chars<'_>) -> Option<(usize, usize)> {
    let mut text = String::new();
    loop {
        match chars.next()? {
            '}' => break,
            c if text.len() < 16 => text.push(c),
            _ => return None,
        }
    }
    let bounds = match text.split_once(',') {
        None => {
            let n = text.parse().ok()?;
            (n, n)
        }
        Some((lo, "")) => (lo.parse().ok()?, usize::MAX),
        Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
    };
    chars.next_if_eq(&'?');
    Some(bounds)
}

impl Pattern {
    /// `None` when matching took too many steps.
    fn finds(&self, text: &str) -> Option<bool> {
        let chars: Vec<char> = text.chars().collect();
        let last_start = if self.anchored_start { 0 } else { chars.len() };
        let mut steps = 0;
        for start in 0..=last_start {
            if self.match_at(0, &chars, start, &mut steps)? {
                return Some(true);
            }
        }
        Some(false)
    }

    fn match_at(&self, piece: usize, text: &[char], pos: usize, steps: &mut usize) -> Option<bool> {
        *steps += 1;
        if *steps > MAX_STEPS {
            return None;
        }
        let Some(p) = self.pieces.get(piece) else {
            return Some(!self.anchored_end || pos == text.len());
        };
        let rest = text.get(pos..).unwrap_or_default();
        let run = rest
            .iter()
            .take(p.max)
            .take_while(|c| p.atom.matches(**c))
            .count();
        if run < p.min {
            return Some(false);
        }
        for taken in (p.min..=run).rev() {
            if self.match_at(piece + 1, text, pos + taken, steps)? {
                return Some(true);
            }
        }
        Some(false)
    }
}
