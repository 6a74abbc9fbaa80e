//! The runtime's modules form layers that run one way: each module uses only
//! modules declared before it in `lib.rs` (ARCHITECTURE.md draws them), and
//! none uses `__private`, which is re-exports for generated code only.

use std::fs;
use std::path::Path;

/// The modules in the order `lib.rs` declares them.
fn layers(src: &Path) -> Vec<String> {
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| line.strip_prefix("mod "))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect()
}

/// The `crate::module` paths a file's code uses (comments excluded).
fn uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
    {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = layers(&src);
    assert!(order.len() > 10, "lib.rs lists the modules: {order:?}");
    let mut upward = Vec::new();
    for (level, module) in order.iter().enumerate() {
        let code = fs::read_to_string(src.join(format!("{module}.rs"))).unwrap();
        for used in uses(&code) {
            if used == "__private" {
                upward.push(format!("{module} uses __private"));
                continue;
            }
            match order.iter().position(|m| *m == used) {
                Some(at) if at > level => upward.push(format!("{module} uses {used}")),
                Some(_) => {}
                // Items of the crate root (re-exports), e.g. `crate::Call`
                // in a doc link.
                None => {}
            }
        }
    }
    assert!(upward.is_empty(), "edges against the layering: {upward:?}");
}
