;; A hostile task component that grows a funcref table until the host stops it. Rust cannot
;; emit `table.grow`, so this one is written in the WebAssembly text format; the conformance
;; suite parses it with the `wat` crate at test time (nothing compiled is checked in).
;;
;; It exports `taskbox:task/handler@0.1.0` with one task, `table_bomb.run(n)`: grow the table
;; one element at a time until it holds `n` elements and return the call's arguments as the
;; output, or with `n = 0` grow forever. If `table.grow` is ever refused with -1 instead of the
;; host stopping the task, the task fails with `fail("table.grow returned -1")`.
(component
  (core module $bomb
    (memory (export "memory") 1)
    (table $t 0 funcref)
    (global $heap (mut i32) (i32.const 1024))

    ;; Static data. 64: the `tasks()` return area (list pointer, length 1); 72: that list's one
    ;; string (pointer, length); 96: its bytes; 160: the failure message.
    (data (i32.const 64) "\48\00\00\00\01\00\00\00\60\00\00\00\0e\00\00\00")
    (data (i32.const 96) "table_bomb.run")
    (data (i32.const 160) "table.grow returned -1")

    ;; A bump allocator: the host copies strings in through it; each task gets a fresh instance.
    (func (export "cabi_realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $ptr i32) (local $end i32) (local $have i32)
      (local.set $ptr
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq
                (memory.grow
                  (i32.shr_u
                    (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 0xffff))
                    (i32.const 16)))
                (i32.const -1))
            (then unreachable))))
      (if (local.get $old_size)
        (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
      (global.set $heap (local.get $end))
      (local.get $ptr))

    (func (export "tasks") (result i32)
      (i32.const 64))

    ;; The first decimal number in the JSON `args` (0 when there is none).
    (func $first_number (param $p i32) (param $len i32) (result i32)
      (local $end i32) (local $n i32) (local $digit i32) (local $seen i32)
      (local.set $end (i32.add (local.get $p) (local.get $len)))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (local.set $digit (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
          (if (i32.lt_u (local.get $digit) (i32.const 10))
            (then
              (local.set $seen (i32.const 1))
              (local.set $n
                (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $digit))))
            (else (br_if $done (local.get $seen))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $next)))
      (local.get $n))

    ;; run(ctx: id, name, queue, attempt, deadline-ms; call: args, kwargs) -> result area.
    ;; Result layout: tag at 0 (0 ok, 1 err), payload at 8; an error's own tag at 8 (2 = fail),
    ;; its string at 16.
    (func (export "run")
      (param $id i32) (param $id_len i32) (param $name i32) (param $name_len i32)
      (param $queue i32) (param $queue_len i32) (param $attempt i32) (param $deadline i64)
      (param $args i32) (param $args_len i32) (param $kwargs i32) (param $kwargs_len i32)
      (result i32)
      (local $target i32)
      (local.set $target (call $first_number (local.get $args) (local.get $args_len)))
      (block $refused
        (block $reached
          (loop $grow
            (br_if $reached
              (i32.and
                (i32.ne (local.get $target) (i32.const 0))
                (i32.ge_u (table.size $t) (local.get $target))))
            (br_if $refused
              (i32.eq (table.grow $t (ref.null func) (i32.const 1)) (i32.const -1)))
            (br $grow)))
        (i32.store8 (i32.const 128) (i32.const 0))
        (i32.store (i32.const 136) (local.get $args))
        (i32.store (i32.const 140) (local.get $args_len))
        (return (i32.const 128)))
      (i32.store8 (i32.const 128) (i32.const 1))
      (i32.store8 (i32.const 136) (i32.const 2))
      (i32.store (i32.const 144) (i32.const 160))
      (i32.store (i32.const 148) (i32.const 22))
      (i32.const 128))
  )
  (core instance $core (instantiate $bomb))

  (type $task-context (record
    (field "id" string)
    (field "name" string)
    (field "queue" string)
    (field "attempt" u32)
    (field "deadline-ms" u64)))
  (type $call (record (field "args" string) (field "kwargs" string)))
  (type $retry-spec (record (field "reason" string) (field "countdown-ms" (option u64))))
  (type $task-error (variant
    (case "retry" $retry-spec)
    (case "reject" string)
    (case "fail" string)))

  (func $tasks (result (list string))
    (canon lift (core func $core "tasks")
      (memory $core "memory") (realloc (func $core "cabi_realloc")) string-encoding=utf8))
  (func $run (param "ctx" $task-context) (param "call" $call)
    (result (result (list u8) (error $task-error)))
    (canon lift (core func $core "run")
      (memory $core "memory") (realloc (func $core "cabi_realloc")) string-encoding=utf8))

  (instance $handler
    (export "task-context" (type $task-context))
    (export "call" (type $call))
    (export "retry-spec" (type $retry-spec))
    (export "task-error" (type $task-error))
    (export "tasks" (func $tasks))
    (export "run" (func $run)))
  (export "taskbox:task/handler@0.1.0" (instance $handler))
)
