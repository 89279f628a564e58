//! OpenAPI schemas of the sync protocol's bodies. The wire types live in
//! `sync-core`, which stays free of web crates, so their JSON Schemas are
//! written here, after docs/SYNC-PROTOCOL.md, and checked against bodies the
//! types really produce (tests below, and schemathesis in CI).

use serde_json::{Value, json};
use sync_core::record::Entity;
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
            "reason": { "type": "string" },
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
            "kind": { "type": "string" },
            "rule": { "type": "string" },
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
        "properties": { "flag": { "type": "string" }, "other_visit_id": uuid() },
    })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn to_schema(value: Value) -> RefOr<Schema> {
    // The literals above are JSON Schema objects; a mistake fails the tests.
    RefOr::T(serde_json::from_value(value).expect("a valid JSON Schema literal"))
}

/// Body of `POST /api/v1/sync/push`.
pub fn push_request() -> RefOr<Schema> {
    to_schema(json!({
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
        },
    }))
}

/// Answer to a push: one result per mutation.
pub fn push_response() -> RefOr<Schema> {
    let ids = |status: &str, mut required: Vec<&'static str>, properties: Value| {
        required.extend(["status", "mutation_id", "record_id"]);
        let mut properties = properties;
        properties["status"] = json!({ "type": "string", "enum": [status] });
        properties["mutation_id"] = uuid();
        properties["record_id"] = uuid();
        json!({ "type": "object", "required": required, "properties": properties })
    };
    to_schema(json!({
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
                    "reason": { "type": "string" },
                    "message": { "type": "string" },
                    "refusals": array(refusal()),
                    "amendment": { "type": "boolean" },
                })),
            ]})),
        },
    }))
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

pub fn manifest_response() -> RefOr<Schema> {
    to_schema(json!({
        "type": "object",
        "required": ["protocol_version", "entries", "scope_checksum"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "entries": array(json!({
                "type": "array",
                "description": "`[entity, id, version]`",
                "prefixItems": [entity(), uuid(), version()],
                "minItems": 3,
                "maxItems": 3,
            })),
            "next_after": { "type": "string" },
            "scope_checksum": scope_checksum(),
        },
    }))
}

pub fn fetch_request() -> RefOr<Schema> {
    to_schema(json!({
        "type": "object",
        "required": ["protocol_version", "records"],
        "additionalProperties": false,
        "properties": {
            "protocol_version": { "type": "integer", "minimum": 0 },
            "records": { "type": "array", "items": record_ref(), "maxItems": 500 },
        },
    }))
}

pub fn fetch_response() -> RefOr<Schema> {
    to_schema(json!({
        "type": "object",
        "required": ["protocol_version", "server_hlc", "changes", "missing"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "server_hlc": hlc(),
            "changes": array(record()),
            "missing": array(record_ref()),
        },
    }))
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

pub fn pull_response() -> RefOr<Schema> {
    to_schema(json!({
        "type": "object",
        "required": ["protocol_version", "server_hlc", "changes", "next_cursor", "has_more", "scope_checksum"],
        "properties": {
            "protocol_version": { "type": "integer" },
            "server_hlc": hlc(),
            "changes": array(record()),
            "purges": array(json!({
                "type": "object",
                "required": ["entity", "record_id", "reason"],
                "properties": {
                    "entity": entity(),
                    "record_id": uuid(),
                    "reason": { "type": "string", "enum": ["left_scope", "deleted"] },
                },
            })),
            "next_cursor": { "type": "string" },
            "has_more": { "type": "boolean" },
            "scope_checksum": scope_checksum(),
        },
    }))
}

/// `ToSchema` handles for `#[utoipa::path]`.
macro_rules! named_schema {
    ($name:ident, $wire:literal, $schema:path) => {
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema()
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
named_schema!(PullResponseSchema, "PullResponse", pull_response);
named_schema!(
    ManifestResponseSchema,
    "ManifestResponse",
    manifest_response
);
named_schema!(FetchRequestSchema, "FetchRequest", fetch_request);
named_schema!(FetchResponseSchema, "FetchResponse", fetch_response);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_literals_are_json_schemas() {
        for schema in [
            push_request(),
            push_response(),
            pull_response(),
            manifest_response(),
            fetch_request(),
            fetch_response(),
        ] {
            let RefOr::T(Schema::Object(object)) = schema else {
                panic!("expected an object schema");
            };
            assert!(!object.required.is_empty());
        }
    }
}
