//! Tests of `nifuse mount`'s option handling: object-store settings inside
//! `-o` and the SOURCE checks.

use super::*;
use clap::Parser;

#[test]
fn object_store_settings_inside_o_are_nifuses_not_the_kernels() {
    let cli = super::super::Cli::parse_from([
        "nifuse",
        "mount",
        "-o",
        "allow_other,no_sign_request,endpoint_url=http://127.0.0.1:9000,region=eu-west-1",
        "-o",
        "metadata_ttl=5",
        "s3://b/p",
        "/mnt",
    ]);
    let super::super::Command::Mount(mut args) = cli.command else {
        panic!("not a mount command");
    };
    apply_o_settings(&mut args).unwrap();
    assert!(args.no_sign_request);
    assert_eq!(args.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(args.region.as_deref(), Some("eu-west-1"));
    assert_eq!(args.metadata_ttl, 5);
    let spec = parse_options(&args.options).unwrap();
    assert!(spec.custom.is_empty(), "{:?}", spec.custom);
    assert_eq!(spec.access, Access::All);
    let bad =
        super::super::Cli::parse_from(["nifuse", "mount", "-o", "metadata_ttl=x", "s3://b", "/m"]);
    let super::super::Command::Mount(mut args) = bad.command else {
        panic!("not a mount command");
    };
    assert!(
        apply_o_settings(&mut args)
            .unwrap_err()
            .contains("metadata_ttl=x")
    );
}

#[test]
fn object_store_options_are_refused_for_a_local_source() {
    let cli = super::super::Cli::parse_from(["nifuse", "mount", "--region", "x", "/data", "/mnt"]);
    let super::super::Command::Mount(args) = cli.command else {
        panic!("not a mount command");
    };
    let err = check(&args).unwrap_err();
    assert!(
        err.starts_with("--region applies to object stores"),
        "{err}"
    );
}
