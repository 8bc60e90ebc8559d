//! Parse-heavy: syn parses each Rust source file into a syntax tree, a
//! `Visit` walks it (counting items, expressions, types, identifiers,
//! literals and attributes), quote's `ToTokens` prints it back to text, and
//! the tree and the text are dropped: a compiler front end or a proc macro
//! over a whole dependency tree. The files are dealt to the threads in turn.

use std::thread;

use quote::ToTokens;
use syn::visit::{self, Visit};

use super::inputs::Source;
use super::Fnv;

/// Node counts of one file.
#[derive(Default)]
struct Census {
    items: u64,
    exprs: u64,
    types: u64,
    idents: u64,
    lits: u64,
    attrs: u64,
}

impl<'ast> Visit<'ast> for Census {
    fn visit_item(&mut self, node: &'ast syn::Item) {
        self.items += 1;
        visit::visit_item(self, node);
    }
    fn visit_expr(&mut self, node: &'ast syn::Expr) {
        self.exprs += 1;
        visit::visit_expr(self, node);
    }
    fn visit_type(&mut self, node: &'ast syn::Type) {
        self.types += 1;
        visit::visit_type(self, node);
    }
    fn visit_ident(&mut self, node: &'ast syn::Ident) {
        self.idents += 1;
        visit::visit_ident(self, node);
    }
    fn visit_lit(&mut self, node: &'ast syn::Lit) {
        self.lits += 1;
        visit::visit_lit(self, node);
    }
    fn visit_attribute(&mut self, node: &'ast syn::Attribute) {
        self.attrs += 1;
        visit::visit_attribute(self, node);
    }
}

/// One thread's share: every `threads`-th file from `first`.
fn worker(sources: &[Source], first: usize, threads: usize) -> u64 {
    let mut h = Fnv::new();
    for src in sources.iter().skip(first).step_by(threads) {
        h.str(&src.name);
        match syn::parse_file(&src.text) {
            Ok(file) => {
                let mut c = Census::default();
                c.visit_file(&file);
                for n in [c.items, c.exprs, c.types, c.idents, c.lits, c.attrs] {
                    h.u64(n);
                }
                let printed = file.to_token_stream().to_string();
                h.str(&printed);
            }
            // Syntax newer than this syn, or a test file that is not Rust on
            // purpose: the error is a result too.
            Err(e) => h.str(&e.to_string()),
        }
    }
    h.finish()
}

/// Parses, walks and prints every file on `threads` threads; the digest of
/// the results in file order per thread, threads in order.
pub fn run(sources: &[Source], threads: usize) -> u64 {
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || worker(sources, t, threads))).collect();
        let mut h = Fnv::new();
        for w in handles {
            h.u64(w.join().expect("parse worker panicked"));
        }
        h.finish()
    })
}
