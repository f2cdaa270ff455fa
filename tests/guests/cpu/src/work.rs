// CPU-bound work shared by the `cpu` guest and the native side of `just bench`, so both run
// exactly the same source. Included with `include!`, hence no module docs here.

/// sha256 over `mib` MiB of deterministic data, chained `rounds` times; returns the last
/// digest's first 8 bytes.
pub fn sha_chain(mib: usize, rounds: u32) -> u64 {
    use sha2::{Digest, Sha256};
    let mut data: Vec<u8> = (0..mib * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut digest = [0u8; 32];
    for _ in 0..rounds {
        digest = Sha256::digest(&data).into();
        data[..32].copy_from_slice(&digest);
    }
    u64::from_le_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7]])
}

/// Total Collatz steps of every start value below `n`: a branch-heavy integer loop.
pub fn collatz_steps(n: u64) -> u64 {
    let mut total = 0;
    for start in 1..n {
        let mut x = start;
        while x != 1 {
            x = if x % 2 == 0 { x / 2 } else { 3 * x + 1 };
            total += 1;
        }
    }
    total
}
