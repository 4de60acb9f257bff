//! The OpenAPI 3 document (`docs/api.json`) and the check that the
//! implementation keeps to it: the operations it lists, and a validator
//! for the JSON Schema subset it uses (`type`, `properties`, `required`,
//! `additionalProperties: false`, `items`, `enum`, `$ref` within the
//! document). Tests use it on the routes ([`crate::ROUTES`]) and on
//! responses from a live server.

use std::collections::BTreeSet;

use serde_json::Value;

/// The document, as it is in the repository.
pub const DOCUMENT: &str = include_str!("../../../docs/api.json");

/// The document parsed.
pub fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("docs/api.json is JSON")
}

/// Every operation the document lists: (method in capitals, path template).
pub fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for m in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Follows a `$ref` to `#/...` inside `doc`.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> Result<&'a Value, String> {
    match v.get("$ref").and_then(Value::as_str) {
        None => Ok(v),
        Some(r) => {
            let ptr = r.strip_prefix('#').ok_or_else(|| format!("{r}: only references inside the document"))?;
            let t = doc.pointer(ptr).ok_or_else(|| format!("{r}: no such component"))?;
            resolve(doc, t)
        }
    }
}

/// Checks a response against the document: the operation lists `status`,
/// and the body (JSON) fits its schema, or is empty where the document
/// gives no content.
pub fn check_response(doc: &Value, method: &str, template: &str, status: u16, body: &[u8]) -> Result<(), String> {
    let what = format!("{method} {template} -> {status}");
    let op = doc["paths"]
        .get(template)
        .and_then(|p| p.get(method.to_lowercase()))
        .ok_or_else(|| format!("{what}: the document has no such operation"))?;
    let resp = op["responses"].get(status.to_string()).ok_or_else(|| format!("{what}: status not in the document"))?;
    let resp = resolve(doc, resp)?;
    let Some(content) = resp.get("content") else {
        return if body.is_empty() { Ok(()) } else { Err(format!("{what}: the document gives no body, got one")) };
    };
    if let Some(media) = content.get("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("{what}: body is not JSON: {e}"))?;
        validate(doc, &media["schema"], &v, "$").map_err(|e| format!("{what}: {e}"))
    } else if content.get("text/plain").is_some() {
        std::str::from_utf8(body).map(|_| ()).map_err(|_| format!("{what}: text body is not UTF-8"))
    } else {
        Err(format!("{what}: a media type this checker does not know"))
    }
}

/// Checks `v` against `schema` (the subset above); `at` names the place.
pub fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = resolve(doc, schema)?;
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            return Err(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    let ty = s.get("type").and_then(Value::as_str);
    let ok = match ty {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(t) => return Err(format!("{at}: schema type {t} unknown to this checker")),
    };
    if !ok {
        return Err(format!("{at}: {v} is not of type {}", ty.unwrap_or("?")));
    }
    if let Some(o) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !o.contains_key(r) {
                return Err(format!("{at}: required field {r} missing"));
            }
        }
        for (k, val) in o {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(doc, ps, val, &format!("{at}.{k}"))?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: field {k} is not in the document"))
                }
                None => {}
            }
        }
    }
    if let (Some(a), Some(items)) = (v.as_array(), s.get("items")) {
        for (i, x) in a.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
