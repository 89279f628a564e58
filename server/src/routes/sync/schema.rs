//! OpenAPI schemas of the sync protocol's bodies. The wire types live in
//! `sync-core`, which stays free of web crates, so their JSON Schemas are
//! written here, after docs/SYNC-PROTOCOL.md, and checked against bodies the
//! types really produce (tests below, and schemathesis in CI).

use serde_json::{Value, json};
use strum::{IntoEnumIterator, VariantArray};
use sync_core::merge::{ConflictKind, Flag, Reason};
use sync_core::record::Entity;
use sync_core::rules::FieldKind;
use utoipa::openapi::{RefOr, Schema};

/// `<15-digit ms>-<8 hex counter>-<32 hex node>`.
const HLC_PATTERN: &str = "^[0-9]{15}-[0-9a-f]{8}-[0-9a-f]{32}$";

fn hlc() -> Value {
    json!({ "type": "string", "pattern": HLC_PATTERN, "description": "Hybrid logical clock" })
}

fn entity() -> Value {
    let names: Vec<&str> = Entity::ALL.iter().map(|entity| entity.as_str()).collect();
    json!({ "type": "string", "enum": names })
}

/// A string enumerating every wire name of `T`.
fn one_of<T: VariantArray + Copy + Into<&'static str>>() -> Value {
    let names: Vec<&'static str> = T::VARIANTS.iter().map(|&v| v.into()).collect();
    json!({ "type": "string", "enum": names })
}

/// Why a field was refused or a mutation rejected (docs/SYNC-PROTOCOL.md).
fn reason() -> Value {
    one_of::<Reason>()
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn version() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn field_change() -> Value {
    json!({
        "type": "object",
        "description": "A register write (`value`) or a set write (`add`/`remove`), never both",
        "required": ["hlc"],
        "properties": {
            "hlc": hlc(),
            "value": {},
            "add": { "type": "array", "items": {} },
            "remove": { "type": "array", "items": { "type": "string" } },
        },
    })
}

fn refusal() -> Value {
    json!({
        "type": "object",
        "required": ["field", "reason", "message", "value"],
        "properties": {
            "field": { "type": "string" },
            "item_id": { "type": "string" },
            "reason": reason(),
            "message": { "type": "string" },
            "value": {},
        },
    })
}

fn conflict() -> Value {
    let side = json!({
        "type": "object",
        "required": ["value", "hlc"],
        "properties": { "value": {}, "hlc": hlc() },
    });
    json!({
        "type": "object",
        "required": ["kind", "server", "client", "winner"],
        "properties": {
            "field": { "type": "string" },
            "item_id": { "type": "string" },
            "kind": one_of::<ConflictKind>(),
            "rule": one_of::<FieldKind>(),
            "server": side,
            "client": side,
            "winner": { "type": "string", "enum": ["server", "client"] },
        },
    })
}

fn flag() -> Value {
    json!({
        "type": "object",
        "required": ["flag"],
        "properties": {
            "flag": { "type": "string", "enum": Flag::iter().map(<&str>::from).collect::<Vec<_>>() },
            "other_visit_id": uuid(),
        },
    })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

/// Body of `POST /api/v1/sync/push`.
fn push_request() -> Value {
    json!({
        "type": "object",
        "required": ["protocol_version", "device_id", "device_hlc", "mutations"],
        "properties": {
            "protocol_version": { "type": "integer", "minimum": 0 },
            "device_id": uuid(),
            "device_hlc": hlc(),
            "mutations": array(json!({
                "type": "object",
                "required": ["mutation_id", "entity", "record_id", "op", "hlc"],
                "properties": {
                    "mutation_id": uuid(),
                    "entity": entity(),
                    "record_id": uuid(),
                    "op": { "type": "string", "enum": ["create", "update", "delete"] },
                    "base_version": version(),
                    "hlc": hlc(),
                    "fields": { "type": "object", "additionalProperties": field_change() },
                },
            })),
            "cursor": {
                "type": "string",
                "description": "The device's pull cursor, when it has one: a push with a cursor made before the server was restored is answered 409 `server_restored` and applies nothing"
            },
        },
    })
}

/// Answer to a push: one result per mutation.
fn push_response() -> Value {
    let ids = |status: &str, mut required: Vec<&'static str>, properties: Value| {
        required.extend(["status", "mutation_id", "record_id"]);
        let mut properties = properties;
        properties["status"] = json!({ "type": "string", "enum": [status] });
        properties["mutation_id"] = uuid();
        properties["record_id"] = uuid();
        json!({ "type": "object", "required": required, "properties": properties })
    };
    json!({
        "type": "object",
        "required": ["protocol_version", "server_hlc", "results"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "server_hlc": hlc(),
            "results": array(json!({ "oneOf": [
                ids("applied", vec!["version"], json!({
                    "version": version(), "flags": array(flag()),
                })),
                ids("merged", vec!["version"], json!({
                    "version": version(),
                    "conflicts": array(conflict()),
                    "refusals": array(refusal()),
                    "flags": array(flag()),
                })),
                ids("rejected", vec!["reason", "message", "amendment"], json!({
                    "reason": reason(),
                    "message": { "type": "string" },
                    "refusals": array(refusal()),
                    "amendment": { "type": "boolean" },
                })),
            ]})),
        },
    })
}

/// Answer to a pull: a page of whole records.
fn scope_checksum() -> Value {
    json!({
        "type": "object",
        "required": ["count", "sum"],
        "properties": {
            "count": { "type": "integer", "minimum": 0 },
            "sum": { "type": "string", "pattern": "^[0-9a-f]{16}$" },
        },
    })
}

fn record_ref() -> Value {
    json!({
        "type": "object",
        "required": ["entity", "id"],
        "properties": { "entity": entity(), "id": uuid() },
    })
}

fn manifest_response() -> Value {
    json!({
        "type": "object",
        "required": ["protocol_version", "entries", "scope_checksum"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "entries": array(json!({
                "type": "array",
                // Positional: `[entity, id, version]`. Written as a union
                // of the three, not `prefixItems`, which schemathesis and
                // several client generators do not read.
                "description": "`[entity, id, version]`, in that order",
                "items": { "anyOf": [entity(), uuid(), version()] },
                "minItems": 3,
                "maxItems": 3,
            })),
            "next_after": { "type": "string" },
            "cursor": {
                "type": "string",
                "description": "A pull cursor at the change log's head when this page was read (after a restore, pull on from the first page's)"
            },
            "scope_checksum": scope_checksum(),
        },
    })
}

fn fetch_request() -> Value {
    json!({
        "type": "object",
        "required": ["protocol_version", "records"],
        "additionalProperties": false,
        "properties": {
            "protocol_version": { "type": "integer", "minimum": 0 },
            "records": { "type": "array", "items": record_ref(), "maxItems": 500 },
        },
    })
}

fn fetch_response() -> Value {
    json!({
        "type": "object",
        "required": ["protocol_version", "server_hlc", "changes", "missing"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "server_hlc": hlc(),
            "changes": array(record()),
            "missing": array(record_ref()),
        },
    })
}

fn record() -> Value {
    let register = json!({
        "type": "object",
        "required": ["value", "hlc", "version"],
        "properties": { "value": {}, "hlc": hlc(), "version": version() },
    });
    let field = json!({ "oneOf": [
        { "type": "object", "required": ["register"], "additionalProperties": false,
          "properties": { "register": register } },
        { "type": "object", "required": ["items"], "additionalProperties": false,
          "properties": { "items": { "type": "object", "additionalProperties": register } } },
    ]});
    json!({
        "type": "object",
        "required": ["entity", "id", "version", "fields"],
        "properties": {
            "entity": entity(),
            "id": uuid(),
            "version": version(),
            "fields": { "type": "object", "additionalProperties": field },
            "tombstone": {
                "type": "object",
                "required": ["hlc", "version"],
                "properties": { "hlc": hlc(), "version": version() },
            },
        },
    })
}

/// `[clock, version]`.
fn stamp() -> Value {
    json!({
        "type": "array",
        "description": "`[clock, version]`, in that order",
        "items": { "anyOf": [hlc(), version()] },
        "minItems": 2,
        "maxItems": 2,
    })
}

/// A record in the compact encoding (`sync_core::protocol::CompactRecord`).
fn compact_record() -> Value {
    json!({
        "type": "object",
        "required": ["entity", "id", "version"],
        "properties": {
            "entity": entity(),
            "id": uuid(),
            "version": version(),
            "clock": stamp(),
            "values": { "type": "object", "additionalProperties": {} },
            "sets": {
                "type": "object",
                "additionalProperties": array(json!({
                    "type": "object",
                    "required": ["id"],
                    "properties": { "id": { "type": "string" } },
                })),
            },
            "clocks": {
                "type": "object",
                "description": "The fields (a register's stamp) and set items (stamps by item id) written at another stamp than `clock`",
                "additionalProperties": { "anyOf": [
                    stamp(),
                    { "type": "object", "additionalProperties": stamp() },
                ]},
            },
            "tombstone": {
                "type": "object",
                "required": ["hlc", "version"],
                "properties": { "hlc": hlc(), "version": version() },
            },
        },
    })
}

fn purges() -> Value {
    array(json!({
        "type": "object",
        "required": ["entity", "record_id", "reason"],
        "properties": {
            "entity": entity(),
            "record_id": uuid(),
            "reason": { "type": "string", "enum": ["left_scope", "deleted"] },
        },
    }))
}

/// A pull page in the full encoding (the default).
fn pull_response() -> Value {
    json!({
        "type": "object",
        "required": ["protocol_version", "server_hlc", "changes", "next_cursor", "has_more", "scope_checksum"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "server_hlc": hlc(),
            "changes": array(record()),
            "purges": purges(),
            "next_cursor": { "type": "string" },
            "has_more": { "type": "boolean" },
            "scope_checksum": scope_checksum(),
        },
    })
}

/// A pull page in the compact encoding (`encoding=compact`).
fn compact_pull_response() -> Value {
    json!({
        "type": "object",
        "description": "The scope checksum on the last page (`has_more: false`) only",
        "required": ["protocol_version", "encoding", "server_hlc", "changes", "next_cursor", "has_more"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "encoding": { "type": "string", "enum": ["compact"] },
            "server_hlc": hlc(),
            "changes": array(compact_record()),
            "purges": purges(),
            "next_cursor": { "type": "string" },
            "has_more": { "type": "boolean" },
            "scope_checksum": scope_checksum(),
        },
    })
}

/// The answer to a pull: a page in the encoding asked for.
fn pull_page() -> Value {
    json!({ "anyOf": [
        { "$ref": "#/components/schemas/PullResponse" },
        { "$ref": "#/components/schemas/CompactPullResponse" },
    ]})
}

/// `ToSchema` handles for `#[utoipa::path]`. utoipa's schema model cannot
/// hold every literal above (an any-value `{}` makes it drop a whole
/// `items`), so the handle registers a placeholder and [`publish`] puts the
/// literal itself into the served document.
macro_rules! named_schema {
    ($name:ident, $wire:literal, $schema:path) => {
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T(Schema::Object(utoipa::openapi::Object::new()))
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($wire)
            }
        }
    };
}

named_schema!(PushRequestSchema, "PushRequest", push_request);
named_schema!(PushResponseSchema, "PushResponse", push_response);
named_schema!(PullPageSchema, "PullPage", pull_page);
named_schema!(
    ManifestResponseSchema,
    "ManifestResponse",
    manifest_response
);
named_schema!(FetchRequestSchema, "FetchRequest", fetch_request);
named_schema!(FetchResponseSchema, "FetchResponse", fetch_response);

/// A schema by its name in the document.
type Literal = (&'static str, fn() -> Value);

/// The sync bodies' schemas by their names in the document.
const LITERALS: [Literal; 8] = [
    ("PushRequest", push_request),
    ("PushResponse", push_response),
    ("PullPage", pull_page),
    ("PullResponse", pull_response),
    ("CompactPullResponse", compact_pull_response),
    ("ManifestResponse", manifest_response),
    ("FetchRequest", fetch_request),
    ("FetchResponse", fetch_response),
];

/// Writes every sync body's schema into `document` (the OpenAPI document as
/// JSON) exactly as written above.
pub fn publish(document: &mut Value) {
    for (name, literal) in LITERALS {
        document["components"]["schemas"][name] = literal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_the_sync_routes_name_is_published_whole() {
        fn refs<'a>(value: &'a Value, into: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                        into.push(r);
                    }
                    map.values().for_each(|v| refs(v, into));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, into)),
                _ => {}
            }
        }
        let document = crate::routes::openapi();
        let mut named = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            if path.starts_with("/api/v1/sync/") {
                refs(item, &mut named);
            }
        }
        // And what those bodies name in turn (a pull page names its two
        // encodings).
        let mut seen = 0;
        while seen < named.len() {
            let name = named[seen]
                .strip_prefix("#/components/schemas/")
                .unwrap_or("");
            if !named[..seen].contains(&named[seen]) {
                refs(&document["components"]["schemas"][name], &mut named);
            }
            seen += 1;
        }
        let mut bodies: Vec<&str> = named
            .iter()
            .filter_map(|r| r.strip_prefix("#/components/schemas/"))
            .filter(|name| *name != "ErrorEnvelope")
            .collect();
        bodies.sort_unstable();
        bodies.dedup();
        assert_eq!(bodies.len(), LITERALS.len(), "{bodies:?}");
        for name in bodies {
            let literal = LITERALS
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("the sync routes name {name}, which has no literal"));
            assert_eq!(
                document["components"]["schemas"][name],
                (literal.1)(),
                "{name}"
            );
        }
    }
}
