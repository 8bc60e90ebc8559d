//! The layer rule of `src/lib.rs`: each module uses only the modules listed
//! before it there. Read from the sources, so a new `use crate::…` that
//! reaches up a layer (an import cycle in the making) fails here with the
//! file and the module it named.

use std::fs;
use std::path::{Path, PathBuf};

/// The crate's modules in the order `src/lib.rs` declares them.
fn layer_order(src: &Path) -> Vec<String> {
    let lib = fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    lib.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("mod ")?;
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            // `mod name;` declares a layer; `mod name { … }` (lib.rs's
            // doctest-only module) and the loom models do not.
            rest[name.len()..].starts_with(';').then_some(name)
        })
        .filter(|name| name != "loom_tests")
        .collect()
}

/// The `.rs` files of module `name` (a file, or a folder of them).
fn files_of(src: &Path, name: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut files: Vec<PathBuf> = fs::read_dir(src.join(name))
        .unwrap_or_else(|e| panic!("module {name}: neither src/{name}.rs nor src/{name}/: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
}

/// The crate-level modules a source file names as `crate::NAME`, outside
/// its unit tests (which may use anything).
fn modules_named(source: &str) -> Vec<String> {
    let code = source.split("\nmod tests {").next().unwrap_or(source);
    let mut named = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
        if !name.is_empty() && !named.contains(&name) {
            named.push(name);
        }
    }
    named
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = layer_order(&src);
    assert!(order.len() >= 10, "lib.rs lists the modules: {order:?}");
    let mut violations = Vec::new();
    for (rank, module) in order.iter().enumerate() {
        for file in files_of(&src, module) {
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let source = fs::read_to_string(&file).unwrap();
            for named in modules_named(&source) {
                match order.iter().position(|m| *m == named) {
                    Some(r) if r > rank => {
                        violations.push(format!("{} uses crate::{named}, a layer above {module}", file.display()))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(violations.is_empty(), "the layer rule of src/lib.rs is broken:\n{}", violations.join("\n"));
}

#[test]
fn the_rule_sees_an_upward_import() {
    assert_eq!(modules_named("use crate::slab::SlabAllocator; crate::sync::Ordering"), ["slab", "sync"]);
    assert!(modules_named("fn f() {}\n#[cfg(test)]\nmod tests { use crate::slab; }").is_empty());
}
