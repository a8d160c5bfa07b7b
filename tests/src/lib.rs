//! Shared test harness: reads fixture manifests (see tools/README.md) and compares outputs
//! with DESIGN.md's tolerance.
