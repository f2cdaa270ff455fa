// The hostile behaviours, one identifier each. Shared by the guest (which must implement every
// case: its match is exhaustive) and the conformance suite (which must test every case: a
// missing test is a compile error). Add a case here, then in both places.
macro_rules! hostile_cases {
    ($callback:ident) => {
        $callback! {
            ok,
            burn,
            spin,
            spin_hostcall,
            sleep,
            alloc,
            alloc_small_steps,
            memory_grow_bomb,
            resource_bomb,
            recurse,
            output,
            huge_error,
            log_flood,
            progress_flood,
            read_file,
            write_file,
            env,
            kv_get,
            kv_set,
            enqueue,
            mail,
            panic,
            trap,
            fail,
            reject,
            retry,
        }
    };
}
