//! OpenAPI documents (3.x and Swagger 2.0, JSON or YAML) turned into a view the portal renders
//! as plain HTML: operations grouped by tag, their parameters, request and response schemas
//! (local `$ref`s resolved, cycles and depth bounded), and the authentication the API needs.

use serde_json::{Map, Value, json};

/// Largest document accepted.
pub const MAX_DOC_BYTES: usize = 2 * 1024 * 1024;
const MAX_DEPTH: usize = 6;
const MAX_ROWS: usize = 300;
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Parses a document typed or uploaded by the admin: JSON or YAML, an object with `openapi` (3.x)
/// or `swagger` (2.0) and a `paths` object. The error is a sentence for the form.
pub fn parse_document(text: &str) -> Result<Value, String> {
    if text.len() > MAX_DOC_BYTES {
        return Err("the OpenAPI document is larger than 2 MiB".to_owned());
    }
    let t = text.trim_start();
    let v: Value = if t.starts_with('{') {
        serde_json::from_str(t).map_err(|e| format!("the document is not valid JSON: {e}"))?
    } else {
        serde_norway::from_str(t).map_err(|e| format!("the document is not valid YAML: {e}"))?
    };
    let Value::Object(o) = &v else {
        return Err("an OpenAPI document is an object with openapi, info and paths".to_owned());
    };
    let version = o
        .get("openapi")
        .or_else(|| o.get("swagger"))
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    match version {
        Some(ver) if ver.starts_with('3') || ver.starts_with('2') => {}
        Some(ver) => {
            return Err(format!(
                "OpenAPI version '{ver}' is not supported (use 3.x or Swagger 2.0)"
            ));
        }
        None => {
            return Err(
                "this is not an OpenAPI document: it has no \"openapi\" (or \"swagger\") field"
                    .to_owned(),
            );
        }
    }
    if !o.get("paths").is_some_and(Value::is_object) {
        return Err("the OpenAPI document has no \"paths\" object".to_owned());
    }
    Ok(v)
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Follows a local `$ref` (`#/components/schemas/X`, `#/definitions/X`, …).
fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let ptr = r.strip_prefix('#')?;
    root.pointer(ptr)
}

fn deref<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    let mut cur = v;
    for _ in 0..8 {
        match cur.get("$ref").and_then(Value::as_str) {
            Some(r) => match resolve(root, r) {
                Some(next) => cur = next,
                None => return cur,
            },
            None => return cur,
        }
    }
    cur
}

fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// A short type label: `string (date-time)`, `array of Charge`, `Charge`, `one of A | B`.
pub fn type_label(s: &Value) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return ref_name(r).to_owned();
    }
    for k in ["oneOf", "anyOf"] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            let names: Vec<String> = list.iter().map(type_label).collect();
            return format!("one of {}", names.join(" | "));
        }
    }
    if s.get("allOf").is_some() {
        return "object".to_owned();
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ if s.get("properties").is_some() => "object".to_owned(),
        _ => String::new(),
    };
    if ty == "array" {
        return match s.get("items") {
            Some(i) => format!("array of {}", type_label(i)),
            None => "array".to_owned(),
        };
    }
    let fmt = str_of(s, "format");
    let base = if ty.is_empty() { "any".to_owned() } else { ty };
    if fmt.is_empty() {
        base
    } else {
        format!("{base} ({fmt})")
    }
}

fn enum_of(s: &Value) -> Vec<String> {
    s.get("enum")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Rows<'a> {
    root: &'a Value,
    out: Vec<Value>,
    stack: Vec<String>,
}

impl Rows<'_> {
    fn push(&mut self, depth: usize, name: &str, required: bool, s: &Value) {
        if self.out.len() >= MAX_ROWS {
            return;
        }
        let resolved = deref(self.root, s);
        let desc = {
            let own = str_of(s, "description");
            if own.is_empty() {
                str_of(resolved, "description")
            } else {
                own
            }
        };
        self.out.push(json!({
            "depth": depth, "name": name, "type": type_label(s),
            "required": required, "description": desc, "enum": enum_of(resolved),
        }));
        self.children(depth + 1, s);
    }

    fn children(&mut self, depth: usize, s: &Value) {
        if depth > MAX_DEPTH || self.out.len() >= MAX_ROWS {
            return;
        }
        let r = s.get("$ref").and_then(Value::as_str).map(str::to_owned);
        if let Some(r) = &r {
            if self.stack.contains(r) {
                return; // a cycle: the type name says enough
            }
            self.stack.push(r.clone());
        }
        let resolved = deref(self.root, s);
        if let Some(all) = resolved.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.children(depth, part);
            }
        }
        for k in ["oneOf", "anyOf"] {
            if let Some(list) = resolved.get(k).and_then(Value::as_array) {
                for (i, alt) in list.iter().enumerate() {
                    self.push(depth, &format!("option {}", i + 1), false, alt);
                }
            }
        }
        let required: Vec<&str> = resolved
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = resolved.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                self.push(depth, name, required.contains(&name.as_str()), p);
            }
        }
        if let Some(items) = resolved.get("items") {
            let ir = deref(self.root, items);
            if ir.get("properties").is_some()
                || ir.get("allOf").is_some()
                || ir.get("oneOf").is_some()
            {
                self.push(depth, "[item]", false, items);
            }
        }
        if r.is_some() {
            self.stack.pop();
        }
    }
}

/// The rows of a schema, as a tree flattened with depths (the top row is the schema itself).
pub fn schema_rows(root: &Value, schema: &Value) -> Vec<Value> {
    let mut rows = Rows {
        root,
        out: Vec::new(),
        stack: Vec::new(),
    };
    rows.push(0, "(body)", false, schema);
    rows.out
}

fn content_list(root: &Value, content: Option<&Value>) -> Vec<Value> {
    let Some(Value::Object(c)) = content else {
        return Vec::new();
    };
    c.iter()
        .map(|(ty, media)| {
            let rows = media
                .get("schema")
                .map(|s| schema_rows(root, s))
                .unwrap_or_default();
            json!({"content_type": ty, "rows": rows})
        })
        .collect()
}

fn security_names(v: Option<&Value>) -> Option<Vec<String>> {
    let list = v?.as_array()?;
    Some(
        list.iter()
            .filter_map(Value::as_object)
            .flat_map(|o| {
                o.iter().map(|(name, scopes)| {
                    let sc: Vec<&str> = scopes
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if sc.is_empty() {
                        name.clone()
                    } else {
                        format!("{name} ({})", sc.join(", "))
                    }
                })
            })
            .collect(),
    )
}

fn scheme_view(name: &str, s: &Value) -> Value {
    let ty = str_of(s, "type");
    let summary = match ty {
        "http" => {
            let scheme = str_of(s, "scheme");
            let fmt = str_of(s, "bearerFormat");
            if scheme.eq_ignore_ascii_case("bearer") {
                format!(
                    "HTTP bearer token{}: send Authorization: Bearer <token>",
                    if fmt.is_empty() {
                        String::new()
                    } else {
                        format!(" ({fmt})")
                    }
                )
            } else {
                format!("HTTP {scheme} authentication")
            }
        }
        "apiKey" => format!("API key in the {} '{}'", str_of(s, "in"), str_of(s, "name")),
        "oauth2" => {
            let mut parts = Vec::new();
            if let Some(flows) = s.get("flows").and_then(Value::as_object) {
                for (flow, f) in flows {
                    let url = str_of(f, "tokenUrl");
                    parts.push(if url.is_empty() {
                        flow.clone()
                    } else {
                        format!("{flow} (token URL {url})")
                    });
                }
            } else if !str_of(s, "flow").is_empty() {
                let url = str_of(s, "tokenUrl");
                parts.push(format!("{} (token URL {url})", str_of(s, "flow")));
            }
            format!("OAuth 2.0: {}", parts.join("; "))
        }
        "openIdConnect" => format!(
            "OpenID Connect (discovery at {})",
            str_of(s, "openIdConnectUrl")
        ),
        "basic" => "HTTP basic authentication".to_owned(),
        other => other.to_owned(),
    };
    json!({"name": name, "type": ty, "summary": summary, "description": str_of(s, "description")})
}

/// The view of a parsed document for the `p_docs.html` template.
pub fn view(doc: &Value) -> Value {
    let swagger2 = doc.get("swagger").is_some();
    let info = doc.get("info").cloned().unwrap_or_else(|| json!({}));
    let servers: Vec<String> = if swagger2 {
        let host = str_of(doc, "host");
        let base = str_of(doc, "basePath");
        if host.is_empty() {
            Vec::new()
        } else {
            vec![format!("{host}{base}")]
        }
    } else {
        doc.get("servers")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|s| str_of(s, "url").to_owned()).collect())
            .unwrap_or_default()
    };
    let schemes = if swagger2 {
        doc.get("securityDefinitions")
    } else {
        doc.pointer("/components/securitySchemes")
    };
    let auth: Vec<Value> = schemes
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(n, s)| scheme_view(n, deref(doc, s)))
                .collect()
        })
        .unwrap_or_default();
    let global_security = security_names(doc.get("security"));

    let tag_desc: Map<String, Value> = doc
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        str_of(t, "name").to_owned(),
                        json!(str_of(t, "description")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    let mut count = 0usize;
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            let item = deref(doc, item);
            let shared: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for m in METHODS {
                let Some(op) = item.get(*m) else { continue };
                count += 1;
                let mut params: Vec<Value> = Vec::new();
                let mut body_rows: Vec<Value> = Vec::new();
                let own = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for p in shared.iter().chain(own.iter()) {
                    let p = deref(doc, p);
                    let loc = str_of(p, "in");
                    if loc == "body" {
                        if let Some(s) = p.get("schema") {
                            body_rows.push(json!({"content_type": "application/json", "rows": schema_rows(doc, s)}));
                        }
                        continue;
                    }
                    let schema = p.get("schema").unwrap_or(p);
                    params.push(json!({
                        "name": str_of(p, "name"), "in": loc,
                        "required": p.get("required").and_then(Value::as_bool).unwrap_or(loc == "path"),
                        "type": type_label(schema), "description": str_of(p, "description"),
                        "enum": enum_of(deref(doc, schema)),
                    }));
                }
                if let Some(rb) = op.get("requestBody") {
                    let rb = deref(doc, rb);
                    body_rows.extend(content_list(doc, rb.get("content")));
                }
                let mut responses = Vec::new();
                if let Some(rs) = op.get("responses").and_then(Value::as_object) {
                    for (code, r) in rs {
                        let r = deref(doc, r);
                        let content = if swagger2 {
                            r.get("schema")
                                .map(|s| vec![json!({"content_type": "application/json", "rows": schema_rows(doc, s)})])
                                .unwrap_or_default()
                        } else {
                            content_list(doc, r.get("content"))
                        };
                        responses.push(json!({"code": code, "description": str_of(r, "description"), "content": content}));
                    }
                }
                let security = security_names(op.get("security"));
                let tag = op
                    .get("tags")
                    .and_then(Value::as_array)
                    .and_then(|t| t.first())
                    .and_then(Value::as_str)
                    .unwrap_or("Endpoints")
                    .to_owned();
                let anchor = format!(
                    "op-{}-{}",
                    m,
                    path.chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                        .collect::<String>()
                );
                let view = json!({
                    "method": m, "path": path, "anchor": anchor,
                    "summary": str_of(op, "summary"), "description": str_of(op, "description"),
                    "operation_id": str_of(op, "operationId"),
                    "deprecated": op.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
                    "parameters": params, "request": body_rows, "responses": responses,
                    "security": security.clone().or_else(|| global_security.clone()),
                    "public": security.as_ref().or(global_security.as_ref()).is_some_and(Vec::is_empty)
                              && (op.get("security").is_some() || doc.get("security").is_some()),
                });
                match groups.iter_mut().find(|(t, _)| *t == tag) {
                    Some((_, ops)) => ops.push(view),
                    None => groups.push((tag, vec![view])),
                }
            }
        }
    }
    json!({
        "title": str_of(&info, "title"), "version": str_of(&info, "version"),
        "description": str_of(&info, "description"), "servers": servers, "auth": auth,
        "global_security": global_security, "count": count,
        "groups": groups.into_iter().map(|(tag, ops)| json!({
            "tag": tag, "description": tag_desc.get(&tag).cloned().unwrap_or(json!("")), "operations": ops
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r##"
openapi: 3.0.3
info:
  title: Payments API
  version: "1.2"
  description: Charge cards.
servers:
  - url: https://api.example.com/payments
security:
  - idp: []
tags:
  - name: charges
    description: Card charges
paths:
  /charges/{id}:
    parameters:
      - name: id
        in: path
        schema: {type: string}
        description: The charge id
    get:
      tags: [charges]
      summary: Read a charge
      parameters:
        - $ref: '#/components/parameters/Expand'
      responses:
        "200":
          description: The charge
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Charge'}
        "404": {description: No such charge}
  /charges:
    post:
      tags: [charges]
      summary: Create a charge
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [amount]
              properties:
                amount: {type: integer, format: int64, description: In cents}
                currency: {type: string, enum: [EUR, USD]}
      responses:
        "201": {description: Created}
  /health:
    get:
      security: []
      responses:
        "200": {description: OK}
components:
  parameters:
    Expand:
      name: expand
      in: query
      schema: {type: boolean}
  securitySchemes:
    idp:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://idp.example.com/token
          scopes: {}
  schemas:
    Charge:
      type: object
      required: [id]
      properties:
        id: {type: string}
        amount: {type: integer}
        parent: {$ref: '#/components/schemas/Charge'}
        tags: {type: array, items: {type: string}}
"##;

    #[test]
    fn a_yaml_document_becomes_pages() {
        let doc = parse_document(SAMPLE).unwrap();
        let v = view(&doc);
        assert_eq!(v["title"], json!("Payments API"));
        assert_eq!(v["count"], json!(3));
        assert_eq!(v["servers"], json!(["https://api.example.com/payments"]));
        assert!(
            v["auth"][0]["summary"]
                .as_str()
                .unwrap()
                .contains("https://idp.example.com/token")
        );
        let charges = &v["groups"][0];
        assert_eq!(charges["tag"], json!("charges"));
        assert_eq!(charges["description"], json!("Card charges"));
        let get = &charges["operations"][0];
        assert_eq!(get["method"], json!("get"));
        assert_eq!(get["parameters"][0]["name"], json!("id"));
        assert_eq!(get["parameters"][0]["required"], json!(true));
        assert_eq!(get["parameters"][1]["name"], json!("expand"));
        assert_eq!(get["parameters"][1]["type"], json!("boolean"));
        let rows = get["responses"][0]["content"][0]["rows"]
            .as_array()
            .unwrap();
        assert_eq!(rows[0]["type"], json!("Charge"));
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["(body)", "id", "amount", "parent", "tags"]);
        assert_eq!(rows[1]["required"], json!(true));
        assert_eq!(rows[4]["type"], json!("array of string"));
        let post = &charges["operations"][1];
        let body = post["request"][0]["rows"].as_array().unwrap();
        assert_eq!(body[1]["name"], json!("amount"));
        assert_eq!(body[1]["type"], json!("integer (int64)"));
        assert_eq!(body[2]["enum"], json!(["EUR", "USD"]));
        assert_eq!(get["security"], json!(["idp"]));
        let health = &v["groups"][1]["operations"][0];
        assert_eq!(health["public"], json!(true));
    }

    #[test]
    fn swagger_2_json_works_too() {
        let doc = parse_document(r##"{"swagger": "2.0", "info": {"title": "Old"}, "host": "h", "basePath": "/v1",
          "securityDefinitions": {"k": {"type": "apiKey", "in": "header", "name": "X-Key"}},
          "definitions": {"Item": {"type": "object", "properties": {"n": {"type": "number"}}}},
          "paths": {"/items": {"post": {"parameters": [{"in": "body", "name": "b", "schema": {"$ref": "#/definitions/Item"}}],
             "responses": {"200": {"description": "ok", "schema": {"type": "array", "items": {"$ref": "#/definitions/Item"}}}}}}}}"##).unwrap();
        let v = view(&doc);
        assert_eq!(v["servers"], json!(["h/v1"]));
        assert_eq!(
            v["auth"][0]["summary"],
            json!("API key in the header 'X-Key'")
        );
        let op = &v["groups"][0]["operations"][0];
        assert_eq!(op["request"][0]["rows"][1]["name"], json!("n"));
        assert_eq!(
            op["responses"][0]["content"][0]["rows"][0]["type"],
            json!("array of Item")
        );
        assert_eq!(
            op["responses"][0]["content"][0]["rows"][1]["name"],
            json!("[item]")
        );
    }

    #[test]
    fn bad_documents_are_explained() {
        assert!(parse_document("{").unwrap_err().contains("not valid JSON"));
        assert!(
            parse_document("a: [")
                .unwrap_err()
                .contains("not valid YAML")
        );
        assert!(
            parse_document("{\"info\": {}}")
                .unwrap_err()
                .contains("no \"openapi\"")
        );
        assert!(
            parse_document("openapi: 3.1.0\ninfo: {}\n")
                .unwrap_err()
                .contains("paths")
        );
        assert!(
            parse_document("openapi: 4.0.0\npaths: {}\n")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(parse_document("- 1\n- 2\n").is_err());
    }

    #[test]
    fn cycles_and_depth_are_bounded() {
        let doc = json!({"openapi": "3.0.0", "paths": {}, "components": {"schemas": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}}}}});
        let rows = schema_rows(&doc, &json!({"$ref": "#/components/schemas/A"}));
        assert!(rows.len() < 10, "{rows:?}");
    }
}
