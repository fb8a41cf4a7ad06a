//! HL7 v2 inbound messages already applied (see `feeds::adt`), so a resent message is not
//! applied twice.

use super::base::*;

/// The inbound feed's record of applied messages.
pub trait Hl7Store {
    /// The acknowledgement code a message was answered with, if it was applied before.
    fn hl7_applied(
        &self,
        tx: &mut Tx,
        sending_facility: &str,
        control_id: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Records a message as applied (inside the transaction of its change).
    fn record_hl7(
        &self,
        tx: &mut Tx,
        sending_facility: &str,
        control_id: &str,
        message_type: &str,
        ack_code: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
