//! Seedling's pure sync core: hybrid logical clocks, per-entity field rules,
//! three-way merge and the versioned wire protocol. No I/O, no clock reads.
