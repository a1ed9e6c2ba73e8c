//! Expectations against what the traffic engine observed: the verdict of one
//! (source, destination, protocol) check, the expected-against-actual table a
//! person reads when a step fails, and the figures of a floating-IP move.

pub mod expectation;
pub mod migration;
pub mod table;

pub use expectation::{
    describe_loss, loss_allows, mismatches, AddressBook, DeliveryObserved, Mismatch,
};
pub use migration::{MigrationFigures, StreamPacket};
pub use table::{render_table, CheckLine};
