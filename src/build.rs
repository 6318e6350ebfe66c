// Only for a RocksDB built outside librocksdb-sys (scripts/rocksdb.sh's
// unity build, used by scripts/setup.sh and scripts/test.sh): librocksdb-sys
// then links that static library but not the C++ runtime it needs.
fn main() {
    println!("cargo:rerun-if-env-changed=ROCKSDB_LIB_DIR");
    if std::env::var_os("ROCKSDB_LIB_DIR").is_some() {
        println!("cargo:rustc-link-lib=stdc++");
    }
}
