//! The committed `openapi.yaml` is what the code generates.
use std::path::Path;

#[test]
fn committed_openapi_yaml_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let generated = giftcodes::api::openapi_yaml();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    // Updating is a convenience: the run that rewrites the file still fails, so a drifted
    // spec never passes, whatever the environment says.
    if committed != generated && std::env::var_os("GIFTCODES_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.yaml");
        panic!("openapi.yaml was out of date and has been rewritten: review and commit it");
    }
    assert!(
        committed == generated,
        "openapi.yaml differs from what the code generates.\n\
         Regenerate it with: GIFTCODES_UPDATE_OPENAPI=1 cargo test --test api spec\n\
         (or: cargo run -- openapi > openapi.yaml) and commit it."
    );
}
