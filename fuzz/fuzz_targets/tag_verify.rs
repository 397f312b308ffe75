//! Delivery tag verification (v2 path walk and root signature, v1
//! signature) on arbitrary bytes: never panics, and accepts nothing that is
//! not signed by the key (no input here is, so every tag is refused).
#![no_main]

use custos_wire::tag::{DeliveryTag, Received, verify_tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let Ok(tag) = DeliveryTag::decode(data) else {
        assert!(verify_tag(&key, data, &dummy()).is_err());
        return;
    };
    if let DeliveryTag::V2(t) = &tag {
        // A decoded position always has a root.
        assert!(t.root().expect("decoded fields encode").is_some());
    }
    let f = tag.fields();
    let envelope = [0u8; 0];
    let received = Received {
        conversation: f.conversation,
        sender: &f.sender,
        server_time: f.server_time,
        franking_commitment: &f.franking_commitment,
        envelope: &envelope,
    };
    assert!(verify_tag(&key, data, &received).is_err(), "forged tag accepted");
});

fn dummy() -> Received<'static> {
    Received {
        conversation: custos_wire::ConversationId([0; 16]),
        sender: "a",
        server_time: 0,
        franking_commitment: &[0; 32],
        envelope: &[],
    }
}
