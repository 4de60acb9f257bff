use super::*;

fn err(method: &str, url: &str, body: &str) -> RouteError {
    route(method, url, body.as_bytes()).expect_err("must be refused")
}

#[test]
fn every_route_gives_its_command() {
    let cases: &[(&str, &str, &str, Command)] = &[
        ("GET", "/machine", "", Command::Machine),
        ("PUT", "/machine/pause", "", Command::Pause),
        ("PUT", "/machine/resume", "{}", Command::Resume),
        ("PUT", "/machine/stop", " \n", Command::Stop),
        (
            "GET",
            "/machine/memory?addr=0x80000000&len=16",
            "",
            Command::ReadMemory { vm: None, addr: 0x8000_0000, len: 16 },
        ),
        (
            "PUT",
            "/machine/memory",
            r#"{"addr": "4096", "data": "00fFa5"}"#,
            Command::WriteMemory { vm: None, addr: 4096, data: vec![0, 0xff, 0xa5] },
        ),
        ("GET", "/metrics", "", Command::Metrics),
        ("GET", "/vms", "", Command::Vms),
        ("GET", "/vms/web%20a", "", Command::Vm("web a".into())),
        (
            "POST",
            "/vms",
            r#"{"name":"b","kernel":"/k","memory":"64M","vcpus":2,"paging":"shadow"}"#,
            Command::CreateVm(VmCreate {
                name: "b".into(),
                kernel: "/k".into(),
                initrd: None,
                cmdline: String::new(),
                memory: Some("64M".into()),
                vcpus: Some(2),
                protected: false,
                paging: Some("shadow".into()),
            }),
        ),
        ("DELETE", "/vms/b", "", Command::DeleteVm("b".into())),
        ("GET", "/vms/a/memory?len=1&addr=7", "", Command::ReadMemory { vm: Some("a".into()), addr: 7, len: 1 }),
        (
            "PUT",
            "/vms/a/memory",
            r#"{"data":"01","addr":"0x10"}"#,
            Command::WriteMemory { vm: Some("a".into()), addr: 16, data: vec![1] },
        ),
        ("GET", "/machine/processes", "", Command::Inspect(Inspect::Processes)),
        ("GET", "/machine/modules", "", Command::Inspect(Inspect::Modules)),
        ("GET", "/machine/syscalls", "", Command::Inspect(Inspect::Syscalls)),
        ("GET", "/machine/monitor", "", Command::Monitor),
        (
            "GET",
            "/machine/vmemory?addr=0xffffffff81000000&len=8",
            "",
            Command::ReadKernelMemory { addr: 0xffff_ffff_8100_0000, len: 8 },
        ),
        ("GET", "/machine/layout", "", Command::Layout),
    ];
    assert_eq!(cases.len(), ROUTES.len(), "a case per route");
    for (m, url, body, want) in cases {
        assert_eq!(route(m, url, body.as_bytes()).as_ref(), Ok(want), "{m} {url}");
    }
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    for url in ["/", "/machines", "/machine/", "/vms/", "/vms/a/b", "/machine/pause/now", "/metrics/x"] {
        assert_eq!(err("GET", url, "").error.status, 404, "{url}");
    }
    let e = err("POST", "/machine", "");
    assert_eq!((e.error.status, e.allow.as_deref()), (405, Some("GET")));
    let e = err("DELETE", "/vms/a/memory", "");
    assert_eq!((e.error.status, e.allow.as_deref()), (405, Some("GET, PUT")));
    let e = err("PUT", "/vms/a", "");
    assert_eq!((e.error.status, e.allow.as_deref()), (405, Some("GET, DELETE")));
    assert_eq!(err("GET", "/machine/stop", "").error.status, 405);
}

#[test]
fn malformed_bodies_and_unknown_fields_are_400() {
    for (url, body) in [
        ("/machine/pause", "{"),
        ("/machine/pause", r#"{"now": true}"#),
        ("/machine/stop", "[]"),
        ("/machine/memory", ""),
        ("/machine/memory", "not json"),
        ("/machine/memory", r#"{"addr":"0x10"}"#),
        ("/machine/memory", r#"{"addr":"0x10","data":"00","extra":1}"#),
        ("/machine/memory", r#"{"addr":16,"data":"00"}"#),
        ("/machine/memory", r#"["0x10","00"]"#),
        ("/machine/memory", r#"{"addr":"0x10","data":"0"}"#),
        ("/machine/memory", r#"{"addr":"0x10","data":"zz"}"#),
        ("/machine/memory", r#"{"addr":"0x10","data":""}"#),
        ("/machine/memory", r#"{"addr":"0x1g","data":"00"}"#),
        ("/vms/a/memory", r#"{"addr":"99999999999999999999","data":"00"}"#),
    ] {
        let e = err("PUT", url, body);
        assert_eq!(e.error.status, 400, "{url} {body}: {e:?}");
        assert!(!e.error.message.is_empty());
    }
    for (url, body) in [
        ("/vms", r#"{"name":"b"}"#),
        ("/vms", r#"{"name":"b","kernel":"/k","disks":[]}"#),
        ("/vms", r#"{"name":"b","kernel":"/k","vcpus":"two"}"#),
        ("/vms", ""),
    ] {
        let e = err("POST", url, body);
        assert_eq!(e.error.status, 400, "{url} {body}: {e:?}");
    }
    assert_eq!(err("DELETE", "/vms/b", r#"{"now":1}"#).error.status, 400);
}

#[test]
fn memory_queries_are_checked() {
    for url in [
        "/machine/memory",
        "/machine/memory?addr=0x1000",
        "/machine/memory?len=4",
        "/machine/memory?addr=0x1000&len=0",
        "/machine/memory?addr=0x1000&len=1048577",
        "/machine/memory?addr=x&len=4",
        "/machine/memory?addr=1&len=4&addr=2",
        "/machine/memory?addr=1&len=4&size=2",
        "/machine/memory?addr=%zz&len=4",
        "/machine?x=1",
    ] {
        assert_eq!(err("GET", url, "").error.status, 400, "{url}");
    }
    assert!(route("GET", "/machine/memory?addr=0&len=1048576", b"").is_ok());
}

#[test]
fn hex_round_trips() {
    let all: Vec<u8> = (0..=255).collect();
    let h = hex_encode(&all);
    assert!(h.starts_with("000102") && h.ends_with("fdfeff"), "{h}");
    assert_eq!(hex_decode(&h).unwrap(), all);
    assert_eq!(hex_decode(&h.to_uppercase()).unwrap(), all);
}

#[test]
fn exposition_groups_families_with_help_and_type() {
    let mut e = Exposition::new();
    e.counter("strata_a_total", "A things.", &[("hart", "0")], 5);
    e.gauge("strata_b", "B level.", &[], 1.5);
    e.counter("strata_a_total", "A things.", &[("hart", "1"), ("vm", "x\"y\\z\nw")], 7);
    assert_eq!(
        e.render(),
        "# HELP strata_a_total A things.\n# TYPE strata_a_total counter\nstrata_a_total{hart=\"0\"} 5\n\
         strata_a_total{hart=\"1\",vm=\"x\\\"y\\\\z\\nw\"} 7\n\
         # HELP strata_b B level.\n# TYPE strata_b gauge\nstrata_b 1.5\n"
    );
}

#[test]
fn the_openapi_document_lists_exactly_the_routes() {
    let doc = openapi::document();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    let documented = openapi::operations(&doc);
    let routed: std::collections::BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(routed, documented, "ROUTES and docs/api.json must list the same operations");
}

#[test]
fn the_schema_check_refuses_what_does_not_fit() {
    let doc = openapi::document();
    let ok = br#"{"addr":"0x10","len":1,"data":"00"}"#;
    assert_eq!(openapi::check_response(&doc, "GET", "/machine/memory", 200, ok), Ok(()));
    for bad in [
        &br#"{"addr":"0x10","len":1}"#[..],
        br#"{"addr":"0x10","len":"1","data":"00"}"#,
        br#"{"addr":"0x10","len":1,"data":"00","x":0}"#,
        b"not json",
    ] {
        assert!(openapi::check_response(&doc, "GET", "/machine/memory", 200, bad).is_err());
    }
    assert!(openapi::check_response(&doc, "GET", "/machine/memory", 409, br#"{"error":"x"}"#).is_err());
    assert!(openapi::check_response(&doc, "PUT", "/machine/pause", 204, b"x").is_err());
    assert!(openapi::check_response(&doc, "PUT", "/machine/pause", 409, br#"{"error":"x"}"#).is_ok());
    assert!(openapi::check_response(&doc, "PUT", "/machine/pause", 409, br#"{"error":1}"#).is_err());
}
