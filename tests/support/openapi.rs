//! Checks served JSON against `protocol/openapi.yaml`: required fields present, no
//! undocumented fields, types (incl. nullable) as documented.

use serde_json::{json, Value};

impl Checker {
    pub fn new() -> Checker {
        Checker {
            spec: spec(),
            errors: Vec::new(),
            count: 0,
        }
    }
}

pub fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/protocol/openapi.yaml"
    ))
    .expect("openapi.yaml");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("valid YAML");
    serde_json::to_value(yaml).expect("YAML as JSON")
}

pub fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut cur = spec;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            resolve(spec, cur)
        }
        None => v,
    }
}

/// Checks `value` against `schema`; returns every problem found, with its JSON path.
pub fn check(spec: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            errors.push(format!("{path}: null but not nullable"));
        }
        return;
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            errors.push(format!("{path}: {value} not in enum {options:?}"));
        }
    }
    let ty = schema["type"].as_str().unwrap_or("object");
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => {
            errors.push(format!("{path}: unknown schema type {other}"));
            true
        }
    };
    if !ok {
        errors.push(format!("{path}: expected {ty}, got {value}"));
        return;
    }
    match ty {
        "object" => {
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for req in schema["required"].as_array().into_iter().flatten() {
                let name = req.as_str().unwrap_or_default();
                if value.get(name).is_none() {
                    errors.push(format!("{path}.{name}: required but missing"));
                }
            }
            for (k, v) in value.as_object().into_iter().flatten() {
                match props.get(k) {
                    Some(s) => check(spec, s, v, &format!("{path}.{k}"), errors),
                    // A map (`additionalProperties: {schema}`): any key, values checked.
                    None if schema["additionalProperties"].is_object() => check(
                        spec,
                        &schema["additionalProperties"],
                        v,
                        &format!("{path}.{k}"),
                        errors,
                    ),
                    None => errors.push(format!("{path}.{k}: not in the schema")),
                }
            }
        }
        "array" => {
            for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                check(
                    spec,
                    &schema["items"],
                    item,
                    &format!("{path}[{i}]"),
                    errors,
                );
            }
        }
        _ => {}
    }
}

/// The response schema of `method template status`.
pub fn response_schema<'a>(
    spec: &'a Value,
    template: &str,
    method: &str,
    status: u16,
) -> &'a Value {
    let op = &spec["paths"][template][method];
    assert!(op.is_object(), "{method} {template} not documented");
    let resp = resolve(spec, &op["responses"][status.to_string()]);
    assert!(
        resp.is_object(),
        "{method} {template} {status} not documented"
    );
    &resp["content"]["application/json"]["schema"]
}

pub struct Checker {
    pub spec: Value,
    pub errors: Vec<String>,
    pub count: usize,
}

impl Checker {
    pub fn check(&mut self, template: &str, method: &str, status: u16, body: &Value) {
        let schema = response_schema(&self.spec, template, method, status).clone();
        let spec = self.spec.clone();
        check(
            &spec,
            &schema,
            body,
            &format!("{method} {template} {status}"),
            &mut self.errors,
        );
        self.count += 1;
    }
}
