//! Raw I420 frames with the wall-clock time stamped into the picture, for bench/llhls.sh.
//!
//!   stamp_publisher [WIDTH HEIGHT FPS SECONDS] | ffmpeg -f rawvideo -pix_fmt yuv420p -s WxH -r FPS -i - …
//!
//! Each frame carries, in its top strip, the time in ms since the UNIX epoch (SystemTime) taken at
//! the instant the frame is produced: a grid of COLS × ROWS square cells of CELL px, black or
//! white, read row by row:
//!
//!   4 start cells (white, black, white, black) · 44 bits of the time, most significant first ·
//!   8 bits of CRC-8 (polynomial 0x07) over the time's 6 big-endian bytes · 8 end cells (black, white, …)
//!
//! bench/llhls-watch.mjs reads it back from the presented frame in the browser (same layout, same
//! CRC). 32 px cells survive x264 at 1.5 Mb/s with room to spare. Frames are paced in real time
//! with a monotonic clock (frame n is produced at start + n / FPS); below the strip a bar moves so
//! the encoder has something to encode.
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Cell size in pixels (luma).
const CELL: usize = 32;
/// Cells per row; the strip is COLS × CELL px wide (640 px at the default size).
const COLS: usize = 20;
/// Rows of cells.
const ROWS: usize = 4;
const START: [bool; 4] = [true, false, true, false];
const END: [bool; 8] = [false, true, false, true, false, true, false, true];
const TIME_BITS: usize = 44;
const CELLS: usize = START.len() + TIME_BITS + 8 + END.len();
const _: () = assert!(CELLS <= COLS * ROWS);

/// CRC-8, polynomial x^8 + x^2 + x + 1, initial value 0, over the 6 low bytes of `ms`, big-endian.
fn crc8(ms: u64) -> u8 {
    let mut crc = 0u8;
    for byte in &ms.to_be_bytes()[2..] {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cells (true = white) that carry `ms`; only its low TIME_BITS bits are kept.
fn encode(ms: u64) -> Vec<bool> {
    let ms = ms & ((1 << TIME_BITS) - 1);
    let crc = crc8(ms);
    let mut cells = START.to_vec();
    cells.extend((0..TIME_BITS).rev().map(|i| ms >> i & 1 == 1));
    cells.extend((0..8).rev().map(|i| crc >> i & 1 == 1));
    cells.extend(END);
    cells
}

/// The time carried by `cells`, or None when the start/end pattern or the CRC does not match.
fn decode(cells: &[bool]) -> Option<u64> {
    if cells.len() < CELLS || cells[..4] != START || cells[CELLS - END.len()..CELLS] != END {
        return None;
    }
    let bits = |range: std::ops::Range<usize>| {
        cells[range]
            .iter()
            .fold(0u64, |acc, &b| acc << 1 | u64::from(b))
    };
    let ms = bits(4..4 + TIME_BITS);
    let crc = bits(4 + TIME_BITS..4 + TIME_BITS + 8);
    (u64::from(crc8(ms)) == crc).then_some(ms)
}

/// Paints `cells` into the luma plane (row-major, `width` px per row): 235 white, 16 black.
fn paint(y: &mut [u8], width: usize, cells: &[bool]) {
    for (i, &white) in cells.iter().enumerate() {
        let (cx, cy) = (i % COLS * CELL, i / COLS * CELL);
        for row in cy..cy + CELL {
            y[row * width + cx..row * width + cx + CELL].fill(if white { 235 } else { 16 });
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis() as u64
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("usage: stamp_publisher [WIDTH HEIGHT FPS SECONDS]")
        })
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let (width, height) = (arg(0, 640) as usize, arg(1, 360) as usize);
    let (fps, seconds) = (arg(2, 30), arg(3, 0)); // 0 seconds: until stdout closes
    assert!(
        width >= COLS * CELL && height >= ROWS * CELL + 16 && width % 2 == 0 && height % 2 == 0
    );

    let mut frame = vec![128u8; width * height * 3 / 2];
    frame[..width * height].fill(80);
    let strip = ROWS * CELL;
    let mut out = std::io::stdout().lock();
    let start = Instant::now();
    let mut late = 0u64;
    for n in 0u64.. {
        if seconds > 0 && n >= seconds * fps {
            break;
        }
        let due = start + Duration::from_micros(n * 1_000_000 / fps);
        match due.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None if Instant::now() - due > Duration::from_millis(1000 / fps) => late += 1,
            None => {}
        }
        let y = &mut frame[..width * height];
        // A bar moving one frame width every 2 s, below the strip.
        let bar = (n as usize * width / (2 * fps as usize)) % width;
        for row in strip..height {
            let line = &mut y[row * width..(row + 1) * width];
            line.fill(80);
            line[bar..(bar + 16).min(width)].fill(200);
        }
        let ms = now_ms();
        let cells = encode(ms);
        debug_assert_eq!(decode(&cells), Some(ms & ((1 << TIME_BITS) - 1)));
        paint(y, width, &cells);
        if out.write_all(&frame).and_then(|()| out.flush()).is_err() {
            break; // the encoder went away
        }
    }
    if late > 0 {
        eprintln!("stamp_publisher: {late} frames more than one frame late");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for ms in [0, 1, 1_795_000_000_123, (1 << TIME_BITS) - 1] {
            assert_eq!(decode(&encode(ms)), Some(ms));
        }
        // Only the low 44 bits travel (good until the year 2527).
        assert_eq!(decode(&encode(1 << TIME_BITS | 5)), Some(5));
    }

    #[test]
    fn any_single_flipped_cell_is_rejected() {
        let cells = encode(1_795_000_000_123);
        for i in 0..cells.len() {
            let mut bad = cells.clone();
            bad[i] = !bad[i];
            assert_eq!(decode(&bad), None, "cell {i}");
        }
        assert_eq!(decode(&cells[..CELLS - 1]), None);
    }

    #[test]
    fn painted_cells_read_back() {
        let (width, height) = (640, 360);
        let mut y = vec![80u8; width * height];
        let cells = encode(1_795_000_000_456);
        paint(&mut y, width, &cells);
        let read: Vec<bool> = (0..CELLS)
            .map(|i| y[(i / COLS * CELL + CELL / 2) * width + i % COLS * CELL + CELL / 2] > 128)
            .collect();
        assert_eq!(decode(&read), Some(1_795_000_000_456));
    }
}
