//! GPU providers: the hardware catalogue and its prices, the Replicate client,
//! and the provider settings (variables overridden by what an admin stored).

pub mod catalog;
pub mod replicate;
pub mod settings;
pub mod status_page;
pub mod token;
