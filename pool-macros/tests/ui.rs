//! trybuild UI tests of `#[grpc_pool]`: one failing file per error message, checked-in
//! `.stderr`; passing files compile and run. `TRYBUILD=overwrite` regenerates the `.stderr`
//! files (then read every one).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
