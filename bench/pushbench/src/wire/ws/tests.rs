use super::*;

/// An unmasked server frame.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

#[test]
fn frame_lengths_of_every_header_size() {
    for len in [0, 125, 126, 65535, 65536, 200_000] {
        let f = server_frame(OP_TEXT, &vec![b'a'; len]);
        let (header, n) = frame_len(&f).unwrap().unwrap();
        assert_eq!(n, len);
        assert_eq!(header + n, f.len());
        // A header cut short is incomplete, not an error.
        assert!(frame_len(&f[..header - 1]).unwrap().is_none());
    }
}

#[test]
fn refuses_fragments_and_masked_server_frames() {
    assert!(frame_len(&[0x01, 0x00]).is_err()); // FIN clear
    assert!(frame_len(&[0x80, 0x00]).is_err()); // continuation
    assert!(frame_len(&[0x81, 0x80]).is_err()); // masked
}

#[test]
fn client_frames_are_masked_and_unmask_back() {
    let mut buf = Vec::new();
    let mask = [1, 2, 3, 4];
    let mut out = Out {
        buf: &mut buf,
        mask,
    };
    let long = vec![b'z'; 300];
    out.text(&[b"ab", b"cde"]);
    out.text(&[&long]);
    // First frame: FIN|text, MASK|5, the mask, masked payload.
    assert_eq!(&buf[..6], &[0x81, 0x85, 1, 2, 3, 4]);
    let unmasked: Vec<u8> = buf[6..11]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    assert_eq!(unmasked, b"abcde");
    // Second: the 16-bit length form.
    assert_eq!(&buf[11..14], &[0x81, 0x80 | 126, 0x01]);
    assert_eq!(buf[14], 44);
    assert_eq!(buf.len(), 11 + 4 + 4 + 300);
}
