// BLAKE2b (RFC 7693) and Argon2id (RFC 9106), for SecureTar v3 password checks.
//
// Why here and in Swift: SecureTar v3 derives its root key with libsodium's `crypto_pwhash` (Argon2id
// v1.3) and its validation and file keys with keyed, salted, personalised BLAKE2b-256. The OpenSSL 3.0
// on the add-on image has neither Argon2 nor BLAKE2b with a salt and personalisation, and the package
// does not link libsodium, so both are written out here, checked against the RFC test vectors and the
// SecureTar fixtures. Only key derivation uses them; bulk data goes through OpenSSL.

/// BLAKE2b with a key, salt and personalisation (parameter block of RFC 7693 §2.5), any output length 1…64.
struct Blake2b {
    private static let iv: [UInt64] = [
        0x6a09_e667_f3bc_c908, 0xbb67_ae85_84ca_a73b, 0x3c6e_f372_fe94_f82b, 0xa54f_f53a_5f1d_36f1,
        0x510e_527f_ade6_82d1, 0x9b05_688c_2b3e_6c1f, 0x1f83_d9ab_fb41_bd6b, 0x5be0_cd19_137e_2179,
    ]
    private static let sigma: [[Int]] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
        [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
        [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
        [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
        [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ]

    private var h: [UInt64]
    private var counter: (low: UInt64, high: UInt64) = (0, 0)
    /// Unprocessed input; the last block is kept back until `finalize` because it is compressed differently.
    private var buffer: [UInt8] = []
    private let outputLength: Int

    /// - Parameters: `salt` and `personal` are zero-padded to 16 bytes, as libsodium does.
    init(outputLength: Int, key: [UInt8] = [], salt: [UInt8] = [], personal: [UInt8] = []) {
        precondition((1...64).contains(outputLength) && key.count <= 64 && salt.count <= 16 && personal.count <= 16)
        self.outputLength = outputLength
        h = Self.iv
        h[0] ^= 0x0101_0000 ^ UInt64(key.count) << 8 ^ UInt64(outputLength)
        let saltWords = Self.words(salt + [UInt8](repeating: 0, count: 16 - salt.count))
        let personalWords = Self.words(personal + [UInt8](repeating: 0, count: 16 - personal.count))
        h[4] ^= saltWords[0]
        h[5] ^= saltWords[1]
        h[6] ^= personalWords[0]
        h[7] ^= personalWords[1]
        if !key.isEmpty { buffer = key + [UInt8](repeating: 0, count: 128 - key.count) }
    }

    static func hash(_ message: [UInt8], outputLength: Int = 64, key: [UInt8] = [], salt: [UInt8] = [], personal: [UInt8] = []) -> [UInt8] {
        var hasher = Blake2b(outputLength: outputLength, key: key, salt: salt, personal: personal)
        hasher.update(message)
        return hasher.finalize()
    }

    mutating func update(_ bytes: [UInt8]) {
        var input = bytes[...]
        while !input.isEmpty {
            if buffer.count == 128 {
                compress(buffer, byteCount: 128, last: false)
                buffer.removeAll(keepingCapacity: true)
            }
            let take = min(128 - buffer.count, input.count)
            buffer += input.prefix(take)
            input = input.dropFirst(take)
        }
    }

    mutating func finalize() -> [UInt8] {
        let count = buffer.count
        compress(buffer + [UInt8](repeating: 0, count: 128 - count), byteCount: count, last: true)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for word in h { for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) } }
        return Array(out.prefix(outputLength))
    }

    private mutating func compress(_ block: [UInt8], byteCount: Int, last: Bool) {
        let (low, overflow) = counter.low.addingReportingOverflow(UInt64(byteCount))
        counter = (low, counter.high &+ (overflow ? 1 : 0))
        let m = Self.words(block)
        var v = h + Self.iv
        v[12] ^= counter.low
        v[13] ^= counter.high
        if last { v[14] = ~v[14] }
        func g(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt64, _ y: UInt64) {
            v[a] = v[a] &+ v[b] &+ x
            v[d] = (v[d] ^ v[a]).rotatedRight(32)
            v[c] = v[c] &+ v[d]
            v[b] = (v[b] ^ v[c]).rotatedRight(24)
            v[a] = v[a] &+ v[b] &+ y
            v[d] = (v[d] ^ v[a]).rotatedRight(16)
            v[c] = v[c] &+ v[d]
            v[b] = (v[b] ^ v[c]).rotatedRight(63)
        }
        for round in 0..<12 {
            let s = Self.sigma[round % 10]
            g(0, 4, 8, 12, m[s[0]], m[s[1]])
            g(1, 5, 9, 13, m[s[2]], m[s[3]])
            g(2, 6, 10, 14, m[s[4]], m[s[5]])
            g(3, 7, 11, 15, m[s[6]], m[s[7]])
            g(0, 5, 10, 15, m[s[8]], m[s[9]])
            g(1, 6, 11, 12, m[s[10]], m[s[11]])
            g(2, 7, 8, 13, m[s[12]], m[s[13]])
            g(3, 4, 9, 14, m[s[14]], m[s[15]])
        }
        for index in 0..<8 { h[index] ^= v[index] ^ v[index + 8] }
    }

    /// Little-endian 64-bit words of a byte string whose length is a multiple of 8.
    static func words(_ bytes: [UInt8]) -> [UInt64] {
        stride(from: 0, to: bytes.count, by: 8).map { start in
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[start + $1]) << UInt64(8 * $1) }
        }
    }
}

extension UInt64 {
    @inline(__always) func rotatedRight(_ count: UInt64) -> UInt64 { self >> count | self << (64 - count) }
}

/// Argon2id version 1.3 (RFC 9106), the `crypto_pwhash_ALG_ARGON2ID13` of libsodium. Lanes are filled one
/// after another (the result does not depend on threads).
enum Argon2id {
    private static let blockWords = 128
    private static let syncPoints = 4

    /// The tag of `password` with `salt`; `memoryKiB` is the memory cost in 1 KiB blocks (libsodium's
    /// `memlimit / 1024`), `iterations` the time cost (libsodium's `opslimit`).
    static func hash(password: [UInt8], salt: [UInt8], iterations: Int, memoryKiB: Int, lanes: Int = 1,
                     tagLength: Int = 32, secret: [UInt8] = [], associatedData: [UInt8] = []) -> [UInt8] {
        precondition(iterations >= 1 && lanes >= 1 && memoryKiB >= 8 * lanes && tagLength >= 4)
        func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        var h0Input = le32(lanes) + le32(tagLength) + le32(memoryKiB) + le32(iterations) + le32(0x13) + le32(2)
        h0Input += le32(password.count) + password + le32(salt.count) + salt
        h0Input += le32(secret.count) + secret + le32(associatedData.count) + associatedData
        let h0 = Blake2b.hash(h0Input)

        let segmentLength = memoryKiB / (syncPoints * lanes)
        let laneLength = segmentLength * syncPoints
        let blockCount = laneLength * lanes
        let memory = UnsafeMutablePointer<UInt64>.allocate(capacity: blockCount * blockWords)
        defer { memory.deallocate() }
        let scratch = Scratch()
        defer { scratch.deallocate() }

        for lane in 0..<lanes {
            for index in 0..<2 {
                let words = Blake2b.words(variableHash(h0 + le32(index) + le32(lane), length: 1024))
                for word in 0..<blockWords { memory[(lane * laneLength + index) * blockWords + word] = words[word] }
            }
        }
        for pass in 0..<iterations {
            for slice in 0..<syncPoints {
                for lane in 0..<lanes {
                    fillSegment(memory: memory, scratch: scratch, pass: pass, slice: slice, lane: lane, lanes: lanes,
                                laneLength: laneLength, segmentLength: segmentLength, blockCount: blockCount, iterations: iterations)
                }
            }
        }
        var final = [UInt64](repeating: 0, count: blockWords)
        for lane in 0..<lanes {
            let last = (lane * laneLength + laneLength - 1) * blockWords
            for word in 0..<blockWords { final[word] ^= memory[last + word] }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        for word in final { for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) } }
        return variableHash(bytes, length: tagLength)
    }

    /// H' of RFC 9106 §3.3: BLAKE2b stretched to `length` bytes.
    static func variableHash(_ input: [UInt8], length: Int) -> [UInt8] {
        let prefixed = (0..<4).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) } + input
        guard length > 64 else { return Blake2b.hash(prefixed, outputLength: length) }
        let rounds = (length + 31) / 32 - 2
        var v = Blake2b.hash(prefixed)
        var out = Array(v.prefix(32))
        for _ in 1..<rounds {
            v = Blake2b.hash(v)
            out += v.prefix(32)
        }
        return out + Blake2b.hash(v, outputLength: length - 32 * rounds)
    }

    /// Work buffers for the compression function, allocated once per hash.
    private final class Scratch {
        let r = UnsafeMutablePointer<UInt64>.allocate(capacity: 128)
        let tmp = UnsafeMutablePointer<UInt64>.allocate(capacity: 128)
        let zero = UnsafeMutablePointer<UInt64>.allocate(capacity: 128)
        let input = UnsafeMutablePointer<UInt64>.allocate(capacity: 128)
        let address = UnsafeMutablePointer<UInt64>.allocate(capacity: 128)
        init() { zero.initialize(repeating: 0, count: 128) }
        func deallocate() { [r, tmp, zero, input, address].forEach { $0.deallocate() } }
    }

    private static func fillSegment(memory: UnsafeMutablePointer<UInt64>, scratch: Scratch, pass: Int, slice: Int, lane: Int,
                                    lanes: Int, laneLength: Int, segmentLength: Int, blockCount: Int, iterations: Int) {
        // Argon2id: data-independent addresses in the first half of the first pass, data-dependent after.
        let independent = pass == 0 && slice < syncPoints / 2
        if independent {
            scratch.input.initialize(repeating: 0, count: 128)
            scratch.input[0] = UInt64(pass)
            scratch.input[1] = UInt64(lane)
            scratch.input[2] = UInt64(slice)
            scratch.input[3] = UInt64(blockCount)
            scratch.input[4] = UInt64(iterations)
            scratch.input[5] = 2 // Argon2id
        }
        func nextAddresses() {
            scratch.input[6] &+= 1
            compress(previous: scratch.zero, reference: scratch.input, into: scratch.address, xor: false, scratch: scratch)
            compress(previous: scratch.zero, reference: scratch.address, into: scratch.address, xor: false, scratch: scratch)
        }
        var start = 0
        if pass == 0 && slice == 0 {
            start = 2
            if independent { nextAddresses() }
        }
        var current = lane * laneLength + slice * segmentLength + start
        var previous = current % laneLength == 0 ? current + laneLength - 1 : current - 1
        for index in start..<segmentLength {
            if current % laneLength == 1 { previous = current - 1 }
            let pseudoRandom: UInt64
            if independent {
                if index % 128 == 0 { nextAddresses() }
                pseudoRandom = scratch.address[index % 128]
            } else {
                pseudoRandom = memory[previous * blockWords]
            }
            let referenceLane = pass == 0 && slice == 0 ? lane : Int((pseudoRandom >> 32) % UInt64(lanes))
            let sameLane = referenceLane == lane
            // Which blocks may be referenced (RFC 9106 §3.4.1.2).
            var areaSize: Int
            if pass == 0 {
                if slice == 0 {
                    areaSize = index - 1
                } else {
                    areaSize = slice * segmentLength + (sameLane ? index - 1 : (index == 0 ? -1 : 0))
                }
            } else {
                areaSize = laneLength - segmentLength + (sameLane ? index - 1 : (index == 0 ? -1 : 0))
            }
            var relative = pseudoRandom & 0xFFFF_FFFF
            relative = (relative &* relative) >> 32 // Swift's >> binds tighter than &*
            let position = areaSize - 1 - Int((UInt64(areaSize) &* relative) >> 32)
            let startPosition = pass == 0 || slice == syncPoints - 1 ? 0 : (slice + 1) * segmentLength
            let referenceIndex = (startPosition + position) % laneLength
            let reference = referenceLane * laneLength + referenceIndex
            compress(previous: memory + previous * blockWords, reference: memory + reference * blockWords,
                     into: memory + current * blockWords, xor: pass > 0, scratch: scratch)
            current += 1
            previous += 1
        }
    }

    /// The compression function G of RFC 9106 §3.5: BLAKE2b's round with multiplications (BlaMka) over
    /// the rows and then the columns of `previous` ⊕ `reference`. Version 1.3 XORs into the old block
    /// from the second pass on.
    private static func compress(previous: UnsafeMutablePointer<UInt64>, reference: UnsafeMutablePointer<UInt64>,
                                 into next: UnsafeMutablePointer<UInt64>, xor: Bool, scratch: Scratch) {
        let r = scratch.r
        let tmp = scratch.tmp
        for word in 0..<128 { r[word] = reference[word] ^ previous[word] }
        if xor {
            for word in 0..<128 { tmp[word] = r[word] ^ next[word] }
        } else {
            tmp.update(from: r, count: 128)
        }
        for row in 0..<8 {
            let b = 16 * row
            permute(r, b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10, b + 11, b + 12, b + 13, b + 14, b + 15)
        }
        for column in 0..<8 {
            let b = 2 * column
            permute(r, b, b + 1, b + 16, b + 17, b + 32, b + 33, b + 48, b + 49, b + 64, b + 65, b + 80, b + 81, b + 96, b + 97, b + 112, b + 113)
        }
        for word in 0..<128 { next[word] = tmp[word] ^ r[word] }
    }

    @inline(__always)
    private static func permute(_ v: UnsafeMutablePointer<UInt64>, _ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int, _ i4: Int, _ i5: Int,
                                _ i6: Int, _ i7: Int, _ i8: Int, _ i9: Int, _ i10: Int, _ i11: Int, _ i12: Int, _ i13: Int,
                                _ i14: Int, _ i15: Int) {
        mix(v, i0, i4, i8, i12)
        mix(v, i1, i5, i9, i13)
        mix(v, i2, i6, i10, i14)
        mix(v, i3, i7, i11, i15)
        mix(v, i0, i5, i10, i15)
        mix(v, i1, i6, i11, i12)
        mix(v, i2, i7, i8, i13)
        mix(v, i3, i4, i9, i14)
    }

    @inline(__always)
    private static func mix(_ v: UnsafeMutablePointer<UInt64>, _ ia: Int, _ ib: Int, _ ic: Int, _ id: Int) {
        var a = v[ia], b = v[ib], c = v[ic], d = v[id]
        a = a &+ b &+ 2 &* (a & 0xFFFF_FFFF) &* (b & 0xFFFF_FFFF)
        d = (d ^ a).rotatedRight(32)
        c = c &+ d &+ 2 &* (c & 0xFFFF_FFFF) &* (d & 0xFFFF_FFFF)
        b = (b ^ c).rotatedRight(24)
        a = a &+ b &+ 2 &* (a & 0xFFFF_FFFF) &* (b & 0xFFFF_FFFF)
        d = (d ^ a).rotatedRight(16)
        c = c &+ d &+ 2 &* (c & 0xFFFF_FFFF) &* (d & 0xFFFF_FFFF)
        b = (b ^ c).rotatedRight(63)
        v[ia] = a
        v[ib] = b
        v[ic] = c
        v[id] = d
    }
}
