import CCrypto

/// HMAC-SHA256 from libcrypto (RFC 2104), for request signing (AWS Signature V4 in S3Client).
///
/// Owns one `EVP_MD_CTX` set up for signing with an HMAC key (`EVP_PKEY_HMAC` through
/// `EVP_DigestSign*`, all declared in `openssl/evp.h`); freed in `deinit`. Feed the message in chunks,
/// then `finalize()` once.
public final class HMAC {
    private let context: OpaquePointer
    private let key: OpaquePointer
    private var finished = false

    /// An HMAC-SHA256 keyed with `key` (any length; longer than the block size is hashed, as RFC 2104 says).
    public init(sha256Key key: [UInt8]) {
        let pkey = key.withUnsafeBufferPointer { buffer in
            // A zero-length key is valid HMAC; libcrypto wants a non-null pointer for it.
            var empty: UInt8 = 0
            return buffer.baseAddress.map { EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, nil, $0, buffer.count) }
                ?? EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, nil, &empty, 0)
        }
        guard let pkey, let context = EVP_MD_CTX_new() else {
            fatalError("libcrypto cannot create an HMAC key (out of memory)")
        }
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, pkey) == 1 else {
            fatalError("libcrypto cannot initialise HMAC-SHA256")
        }
        self.key = pkey
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
        EVP_PKEY_free(key)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "HMAC updated after finalize")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestSignUpdate(context, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The 32-byte MAC; the object cannot be used afterwards.
    public func finalize() -> [UInt8] {
        precondition(!finished, "HMAC finalized twice")
        finished = true
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length = output.count
        guard EVP_DigestSignFinal(context, &output, &length) == 1 else {
            fatalError("libcrypto cannot finish HMAC-SHA256")
        }
        return Array(output[0..<length])
    }

    /// HMAC-SHA256 of `message` under `key`, in one call.
    public static func sha256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        let mac = HMAC(sha256Key: key)
        mac.update(message)
        return mac.finalize()
    }
}

@available(*, unavailable)
extension HMAC: Sendable {}
