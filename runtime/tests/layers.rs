//! The runtime's modules form layers that run one way: each module uses only
//! modules declared before it in `lib.rs` (ARCHITECTURE.md draws them), and
//! none uses `__private`, which is re-exports for generated code only. A
//! module that is a directory (`nats/`) is checked file by file, and its
//! files form layers of their own, in the order its `mod.rs` declares them.

use std::fs;
use std::path::Path;

/// The modules a file declares (`mod x;` and `pub mod x;`), in order.
fn declared(code: &str) -> Vec<String> {
    code.lines()
        .map(str::trim_start)
        .filter_map(|line| {
            line.strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .or_else(|| line.strip_prefix("mod "))
        })
        .filter(|rest| rest.ends_with(';'))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect()
}

/// The code of each file of `module`: `module.rs`, or every file of the
/// directory `module/`, named.
fn files(src: &Path, module: &str) -> Vec<(String, String)> {
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        return vec![(module.to_owned(), fs::read_to_string(file).unwrap())];
    }
    let dir = src.join(module);
    assert!(dir.is_dir(), "module {module} is neither a file nor a directory");
    let mut found: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (format!("{module}/{name}"), fs::read_to_string(&path).unwrap())
        })
        .collect();
    found.sort();
    found
}

/// The names that follow `prefix` in a file's code (comments excluded):
/// `crate::x`, or `super::x` and each name of `super::{x, y}`.
fn uses(code: &str, prefix: &str) -> Vec<String> {
    let ident = |rest: &str| -> String {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for line in code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
    {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            rest = &rest[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inside = group.split('}').next().unwrap_or("");
                found.extend(inside.split(',').map(|name| ident(name.trim())));
            } else {
                found.push(ident(rest));
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = declared(&fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(order.len() > 10, "lib.rs lists the modules: {order:?}");
    assert!(
        order.iter().any(|module| module == "nats"),
        "`pub mod` declarations are read too: {order:?}"
    );
    let mut upward = Vec::new();
    let mut checked = Vec::new();
    for (level, module) in order.iter().enumerate() {
        for (file, code) in files(&src, module) {
            for used in uses(&code, "crate::") {
                if used == "__private" {
                    upward.push(format!("{file} uses __private"));
                    continue;
                }
                match order.iter().position(|m| *m == used) {
                    Some(at) if at > level => upward.push(format!("{file} uses {used}")),
                    Some(_) => {}
                    // Items of the crate root (re-exports), e.g. `crate::Call`
                    // in a doc link.
                    None => {}
                }
            }
            checked.push(file);
        }
    }
    assert!(upward.is_empty(), "edges against the layering: {upward:?}");
    assert!(
        checked.iter().any(|file| file == "nats/service"),
        "the files of nats/ are checked: {checked:?}"
    );
}

#[test]
fn the_files_of_a_directory_module_use_only_the_ones_declared_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut upward = Vec::new();
    for module in ["nats"] {
        let dir = src.join(module);
        let order = declared(&fs::read_to_string(dir.join("mod.rs")).unwrap());
        assert!(order.len() >= 4, "{module}/mod.rs declares its files: {order:?}");
        for (level, file) in order.iter().enumerate() {
            let code = fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap();
            for used in uses(&code, "super::") {
                // Items of `mod.rs` itself are shared by every file.
                if let Some(at) = order.iter().position(|m| *m == used)
                    && at > level
                {
                    upward.push(format!("{module}/{file} uses {used}"));
                }
            }
        }
    }
    assert!(upward.is_empty(), "edges against the layering: {upward:?}");
}
