//! Admin subcommands of the `fjord` binary (`fjord groups ...`). They talk
//! to a running broker over the Kafka protocol, as Kafka's shell tools do,
//! so they work against any Kafka-compatible broker.

pub mod client;
pub mod groups;
pub mod time;
