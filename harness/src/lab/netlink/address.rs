//! Addresses on a member's links.

use std::net::IpAddr;

use super::Member;
use crate::lab::error::LabError;

impl Member {
    pub(crate) async fn add_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix: u8,
        what: &str,
    ) -> Result<(), LabError> {
        self.nl
            .address()
            .add(index, address, prefix)
            .replace()
            .execute()
            .await
            .map_err(self.fail(format!("add address {address}/{prefix} to {what}")))
    }
}
