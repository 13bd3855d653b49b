//! Per-key rate limits and usage credits.

mod model;

pub use self::model::{Credits, InvalidLimit, KeyLimits, LimitsUpdate, Rate, RateLimit};
