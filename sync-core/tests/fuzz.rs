//! Fuzzing what a phone can send into what the server runs: arbitrary
//! bytes and arbitrary JSON into the push decoder (`PushRequest`), and
//! valid mutations mutated at random — any value anywhere replaced by any
//! JSON — decoded and merged into every kind of stored record by every
//! kind of writer. The decoder never panics (it answers a serde error, which
//! the server turns into 400 `malformed_json` or 422 `validation_failed`);
//! whatever decodes merges without panicking, and deterministically.
//!
//! Case count: `PROPTEST_CASES` (CI runs 1024; the recorded campaign ran
//! 100,000, see docs/RELIABILITY.md). Failures are saved under
//! `sync-core/proptest-regressions/fuzz.txt` and replayed first.

use proptest::{prelude::*, test_runner::FileFailurePersistence};
use serde_json::Value;
use sync_core::{
    clock::HlcClock,
    merge::{admit, merge},
    protocol::{Mutation, PushRequest},
    record::Record,
    rules::{Actor, Role, rules_for},
    testing::{
        actor, any_actor, any_edit, any_json, child_create, hlc, mutate_json, plan_item_create,
        stored, stored_visit, uuid,
    },
};

fn any_base() -> impl Strategy<Value = Record> {
    prop_oneof![
        Just(stored_visit("draft")),
        Just(stored_visit("approved")),
        Just(stored(
            &child_create(hlc(1_000, 0xa1)).build(),
            &actor(Role::Admin)
        )),
        Just(stored(
            &plan_item_create(hlc(1_000, 0xa2)).build(),
            &actor(Role::Director)
        )),
    ]
}

/// A valid push of one to three mutations to `base`, as JSON.
fn valid_push(base: &Record) -> impl Strategy<Value = Value> + use<> {
    prop::collection::vec(any_edit(base.entity, base.version), 1..4).prop_map(|mutations| {
        serde_json::to_value(PushRequest {
            protocol_version: 1,
            device_id: uuid(0xd0),
            device_hlc: hlc(1_600, 0xd0),
            mutations,
            cursor: None,
        })
        .expect("serialisable")
    })
}

/// Merges `mutation` into `base` (and, as a create, into nothing) after
/// admitting it on a server clock; checks it is deterministic.
fn merges_deterministically(base: &Record, mut mutation: Mutation, by: &Actor) {
    let mut clock = HlcClock::new(uuid(0x5e));
    admit(&mut mutation, &mut clock, 2_000);
    for current in [Some(base), None] {
        let entity = current.map_or(mutation.entity, |r| r.entity);
        let first = merge(rules_for(entity), current, &mutation, by);
        let again = merge(rules_for(entity), current, &mutation, by);
        assert_eq!(first, again, "the merge is a function of its inputs");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/fuzz.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes: decoded or refused, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic_the_push_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        let _ = serde_json::from_slice::<PushRequest>(&bytes);
        let _ = serde_json::from_slice::<Mutation>(&bytes);
    }

    /// Arbitrary JSON shapes, as a push and as one mutation: whatever
    /// decodes merges into every base without panicking.
    #[test]
    fn arbitrary_json_decodes_or_is_refused_and_merges_if_it_decodes(
        value in any_json(), base in any_base(), by in any_actor()
    ) {
        let _ = serde_json::from_value::<PushRequest>(value.clone());
        if let Ok(mutation) = serde_json::from_value::<Mutation>(value) {
            merges_deterministically(&base, mutation, &by);
        }
    }

    /// Valid pushes with one value anywhere replaced by any JSON (or one
    /// key removed), and as text with bytes flipped or cut: decoded or
    /// refused; what decodes merges deterministically.
    #[test]
    fn mutated_valid_pushes_decode_or_are_refused_and_merge_deterministically(
        (base, push) in any_base().prop_flat_map(|base| {
            let push = valid_push(&base);
            (Just(base), push)
        }),
        steps in prop::collection::vec(any::<usize>(), 0..6),
        with in any_json(),
        remove in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
        by in any_actor(),
    ) {
        let mut value = push;
        mutate_json(&mut value, &steps, with, remove);
        let mut text = serde_json::to_vec(&value).expect("serialisable");
        if let Ok(request) = serde_json::from_slice::<PushRequest>(&text) {
            for mutation in request.mutations {
                merges_deterministically(&base, mutation, &by);
            }
        }
        let (at, byte) = flip;
        let i = at.index(text.len());
        text[i] ^= byte;
        let _ = serde_json::from_slice::<PushRequest>(&text);
        text.truncate(cut.index(text.len() + 1));
        let _ = serde_json::from_slice::<PushRequest>(&text);
    }
}
