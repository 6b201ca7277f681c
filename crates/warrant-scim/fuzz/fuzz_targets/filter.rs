//! Feeds arbitrary bytes to the filter and PATCH path parsers, evaluates and checks the filters
//! that parse against a fixed user, applies PATCH operations at the paths that parse, and checks
//! that printing a parsed filter or path gives one that parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use warrant_scim::schema::user_schemas;
use warrant_scim::{PatchOp, PatchOpKind, apply, parse_filter, parse_path};

fn user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223",
        "userName": "bjensen@example.com",
        "name": { "givenName": "Barbara", "familyName": "Jensen" },
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "active": true,
        "meta": { "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z" },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Tour Operations",
            "manager": { "value": "26118915" }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let schemas = user_schemas();
    let resource = user();
    if let Ok(filter) = parse_filter(&input) {
        let _ = filter.matches(&resource, &schemas);
        let _ = filter.check(&schemas);
        assert_eq!(parse_filter(&filter.to_string()).ok(), Some(filter));
    }
    if let Ok(path) = parse_path(&input) {
        assert_eq!(parse_path(&path.to_string()).ok(), Some(path.clone()));
        for (op, value) in [
            (
                PatchOpKind::Add,
                Some(json!({ "value": "x@example.com", "type": "work" })),
            ),
            (PatchOpKind::Replace, Some(json!("x"))),
            (PatchOpKind::Remove, None),
        ] {
            let ops = [PatchOp {
                op,
                path: Some(path.clone()),
                value,
            }];
            let _ = apply(&mut resource.clone(), &ops, &schemas);
        }
    }
});
