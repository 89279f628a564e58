//! Wire shapes of the protocol, pinned to the JSON in docs/SYNC-PROTOCOL.md.

use serde_json::json;
use strum::{IntoEnumIterator, VariantArray};
use sync_core::merge::{ConflictKind, Flag, Reason};
use sync_core::rules::FieldKind;
use sync_core::{
    SyncError,
    clock::Hlc,
    merge::{Verdict, merge},
    protocol::{
        ErrorEnvelope, MutationResult, PROTOCOL_VERSION, PullRequest, PushRequest,
        check_protocol_version, urgent_first,
    },
    record::Entity,
    rules::{Role, rules_for},
    testing::{MutationBuilder as M, actor, hlc, ids, stored_visit, visit_create},
};

#[test]
fn a_push_request_parses_from_the_documented_json() {
    let body = json!({
        "protocol_version": 1,
        "device_id": "0f8e6a52-3f6e-4c1e-9d55-4c7a2b1d9e01",
        "device_hlc": "001772424000000-00000002-0f8e6a523f6e4c1e9d554c7a2b1d9e01",
        "mutations": [{
            "mutation_id": "5b0c1a7e-9e4b-4f4e-8a8c-2f3d3b9d7a10",
            "entity": "visit",
            "record_id": "3d6f0f5c-1b2a-4c3d-9e8f-7a6b5c4d3e2f",
            "op": "update",
            "base_version": 4,
            "hlc": "001772424000000-00000001-0f8e6a523f6e4c1e9d554c7a2b1d9e01",
            "fields": {
                "location": {"hlc": "001772424000000-00000001-0f8e6a523f6e4c1e9d554c7a2b1d9e01", "value": "school"},
                "needs": {"hlc": "001772424000000-00000001-0f8e6a523f6e4c1e9d554c7a2b1d9e01",
                          "add": [{"id": "n2", "area": "study", "note": "tutoring"}], "remove": ["n1"]}
            }
        }]
    });
    let req: PushRequest = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(req.mutations[0].fields.len(), 2);
    assert_eq!(serde_json::to_value(&req).unwrap(), body);
}

#[test]
fn results_are_tagged_by_status() {
    let rec = stored_visit("approved");
    let m = M::update(Entity::Visit, ids::VISIT, 1, hlc(2_000, 1))
        .set("location", json!("x"))
        .build();
    let out = merge(
        rules_for(Entity::Visit),
        Some(&rec),
        &m,
        &actor(Role::Director),
    );
    assert!(matches!(out.verdict, Verdict::Rejected { .. }));
    let json = serde_json::to_value(MutationResult::from_outcome(&m, &out)).unwrap();
    assert_eq!(json["status"], "rejected");
    assert_eq!(json["reason"], "locked");
    assert_eq!(json["amendment"], true);
}

#[test]
fn an_old_app_is_told_to_update() {
    assert!(check_protocol_version(PROTOCOL_VERSION).is_ok());
    let err = check_protocol_version(0).unwrap_err();
    assert!(matches!(err, SyncError::UnsupportedProtocol { got: 0, .. }));
    let env = ErrorEnvelope::from(&err);
    assert_eq!(env.error.code, "unsupported_protocol");
    assert!(env.error.message.contains("update the app"));
}

#[test]
fn pull_limits_default_and_clamp() {
    let q: PullRequest = serde_json::from_value(json!({"protocol_version": 1})).unwrap();
    assert_eq!((q.cursor.as_deref(), q.effective_limit()), (None, 200));
    let q: PullRequest =
        serde_json::from_value(json!({"protocol_version": 1, "cursor": "c", "limit": 99999}))
            .unwrap();
    assert_eq!(q.effective_limit(), 1000);
}

#[test]
fn urgent_records_go_first_and_keep_their_own_order() {
    let a = M::create(Entity::Visit, ids::VISIT, hlc(1, 1)).build();
    let other = M::update(Entity::Visit, ids::CHILD, 3, hlc(2, 1))
        .set("location", json!("x"))
        .build();
    let urgent = M::update(Entity::Visit, ids::VISIT, 0, hlc(3, 1))
        .add(
            "risk_flags",
            json!({"id": "r1", "code": "suspected_abuse", "urgent": true}),
        )
        .build();
    let order: Vec<Hlc> = urgent_first(vec![a.clone(), other, urgent])
        .iter()
        .map(|m| m.hlc)
        .collect();
    assert_eq!(order, vec![hlc(1, 1), hlc(3, 1), hlc(2, 1)]);
}

/// The OpenAPI document enumerates these codes from their strum names; a
/// name that differed from the serde name would promise a code the server
/// never sends.
#[test]
fn every_enumerated_code_is_its_wire_name() {
    fn check<T: serde::Serialize + Copy + Into<&'static str>>(all: &[T]) {
        for &value in all {
            let name: &'static str = value.into();
            assert_eq!(serde_json::to_value(value).unwrap(), json!(name));
        }
    }
    check(Reason::VARIANTS);
    check(ConflictKind::VARIANTS);
    check(FieldKind::VARIANTS);
    for flag in Flag::iter() {
        let name: &'static str = (&flag).into();
        assert_eq!(serde_json::to_value(&flag).unwrap()["flag"], json!(name));
    }
}

#[test]
fn a_create_never_merges_into_a_record_that_exists() {
    let live = stored_visit("draft");
    let mut deleted = stored_visit("draft");
    deleted.tombstone = Some(sync_core::record::Tombstone {
        hlc: hlc(1_500, 1),
        version: 2,
    });
    for current in [live, deleted] {
        let again = visit_create(hlc(2_000, 1))
            .set("review_status", json!("draft"))
            .build();
        let out = merge(
            rules_for(Entity::Visit),
            Some(&current),
            &again,
            &actor(Role::Director),
        );
        let Verdict::Rejected { reason, .. } = out.verdict else {
            panic!("a second create was not rejected: {:?}", out.verdict);
        };
        assert_eq!(reason, Reason::IdExists);
        assert_eq!(
            out.record(),
            Some(&current),
            "the stored record is unchanged"
        );
    }
}

/// A visit's `location` is what the field app records: a place name the
/// director typed, or the phone's position.
#[test]
fn a_visit_location_is_a_place_name_or_a_position() {
    let location = rules_for(Entity::Visit).field("location").unwrap();
    for good in [
        json!("村委会"),
        json!({"lat": 29.87, "lon": 121.55}),
        json!({"lat": -90, "lon": 180, "accuracy_m": 12}),
    ] {
        assert_eq!(location.ty.check(&good), Ok(()), "{good}");
    }
    for bad in [
        json!(12),
        json!({"lat": 91, "lon": 0}),
        json!({"lat": 29.8}),
        json!({"lat": 29.8, "lon": 121.5, "accuracy_m": -1}),
        json!({"lat": "29.8", "lon": 121.5}),
        json!({"lat": 29.8, "lon": 121.5, "address": "x"}),
    ] {
        assert!(location.ty.check(&bad).is_err(), "{bad} was accepted");
    }
}
