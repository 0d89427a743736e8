//! Finds the system DPDK with pkg-config, generates bindings with bindgen and compiles the C
//! shim that gives DPDK's static inline functions a linkable symbol.

use std::env;
use std::path::PathBuf;
use std::process::exit;

const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(true)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            // One line the user can act on; cargo shows it as `error: ...` and fails the
            // build without dumping the script's other output.
            println!(
                "cargo::error=libdpdk >= {MIN_VERSION} not found by pkg-config; run scripts/setup to install it"
            );
            eprintln!("pkg-config said: {}", first_line(&e.to_string()));
            exit(0);
        }
    };

    // The compile flags pkg-config gives (include paths, `-include rte_config.h`, the
    // `-march` DPDK was built for). A `-march=native` would tie the binary to the build
    // machine's CPU, so it is dropped; DPDK's own baseline (`-march=corei7` on Debian) stays,
    // because its headers select SSE4.2 code paths from it.
    let cflags = compile_flags();

    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c").include("csrc").opt_level(3);
    for path in &dpdk.include_paths {
        shim.include(path);
    }
    for flag in &cflags {
        if !flag.starts_with("-I") {
            shim.flag(flag);
        }
    }
    shim.warnings(true).compile("anycast6_dpdk_shim");

    let mut builder = bindgen::Builder::default()
        .header("csrc/shim.h")
        .clang_args(&cflags)
        .clang_arg("-Icsrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::ModuleConsts)
        // Structures DPDK marks both packed and aligned have no Rust equivalent; none of
        // them is needed by value, so they stay opaque.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr");
    for f in [
        "shim_.*",
        "rte_eal_.*",
        "rte_eth_.*",
        "rte_pktmbuf_.*",
        "rte_mempool_.*",
        "rte_lcore_.*",
        "rte_get_main_lcore",
        "rte_get_next_lcore",
        "rte_socket_id",
        "rte_socket_count",
        "rte_strerror",
        "rte_dev_probe",
        "rte_dev_remove",
        "rte_version",
        "rte_log_set_global_level",
    ] {
        builder = builder.allowlist_function(f);
    }
    for t in [
        "rte_mbuf",
        "rte_mempool",
        "rte_eth_.*",
        "rte_ether_addr",
        "rte_lcore_state_t",
        "lcore_function_t",
    ] {
        builder = builder.allowlist_type(t);
    }
    for v in [
        "RTE_ETH_.*",
        "RTE_MBUF_.*",
        "RTE_PKTMBUF_HEADROOM",
        "RTE_MAX_LCORE",
        "RTE_MAX_ETHPORTS",
        "RTE_MAX_NUMA_NODES",
        "RTE_ETHDEV_QUEUE_STAT_CNTRS",
        "RTE_ETHER_.*",
        "RTE_MEMPOOL_.*",
        "RTE_LOG_.*",
        "SOCKET_ID_ANY",
        "LCORE_ID_ANY",
        "RTE_VER_.*",
        // errno values DPDK returns (negated) and sets in rte_errno
        "E_RTE_.*",
        "EINVAL",
        "ENODEV",
        "ENOTSUP",
        "ENOMEM",
        "ENOSPC",
        "ENOENT",
        "EEXIST",
        "EBUSY",
        "EALREADY",
        "EPERM",
        "EIO",
        "EPROTO",
        "ENOEXEC",
        "EFAULT",
    ] {
        builder = builder.allowlist_var(v);
    }

    let bindings = builder.generate().unwrap_or_else(|e| {
        println!("cargo::error=bindgen failed on the DPDK headers ({e}); is libclang-dev installed? run scripts/setup");
        exit(0);
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}

/// `pkg-config --cflags libdpdk`, split, without `-march=native`.
fn compile_flags() -> Vec<String> {
    let output = std::process::Command::new(env::var("PKG_CONFIG").unwrap_or("pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output();
    let text = match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            println!("cargo::error=`pkg-config --cflags libdpdk` failed; run scripts/setup to install DPDK");
            exit(0);
        }
    };
    let mut flags = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "-march=native" | "-mtune=native" | "-mcpu=native" => {
                println!("cargo:warning=dropping {word} from DPDK's cflags (portable build)");
            }
            // `-include rte_config.h` is two words that must stay together.
            "-include" => {
                if let Some(file) = words.next() {
                    flags.push(word.to_owned());
                    flags.push(file.to_owned());
                }
            }
            _ => flags.push(word.to_owned()),
        }
    }
    flags
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}
