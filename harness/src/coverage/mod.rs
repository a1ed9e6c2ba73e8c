//! Coverage: the dimensions of floating-IP behaviour as data, which points of
//! them each scenario exercises, and which pairs of values a catalogue covers,
//! cannot cover (and why), or leaves as holes. Pure: `coverage` reads scenarios,
//! never a lab; `explore` reports against the same dimensions.
//!
//! - [`DIMENSIONS`]: every dimension and its values.
//! - [`exercised`]: the points one scenario exercises, step by step.
//! - [`IMPOSSIBLE`]: the pairs no case can exercise, each with why.
//! - [`Coverage`]: the table of a catalogue.

mod dimensions;
mod rules;
mod table;
mod track;

pub use dimensions::{dimension, Dimension, DIMENSIONS};
pub use rules::{impossible, Impossible, Why, ANY, IMPOSSIBLE};
pub use table::{Coverage, Pair};
pub use track::{exercised, Exercised, Point};

use crate::scenario::Scenario;

/// The coverage table of `scenarios`.
pub fn coverage_of(scenarios: &[Scenario]) -> Coverage {
    let points: Vec<Exercised> = scenarios.iter().flat_map(exercised).collect();
    Coverage::of(scenarios.len(), &points)
}

#[cfg(test)]
mod tests;
