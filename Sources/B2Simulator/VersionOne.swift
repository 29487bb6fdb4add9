/// Where API version v1 answers the JSON calls differently from v2, for the clients that still speak
/// it (rclone 1.60, Debian 12's, uses v1 for every call). The authorize shape is in ``APIRoutes``.
///
/// - `b2_list_file_names`, `b2_list_file_versions`: each entry's length is `size`, not `contentLength`.
/// - `b2_start_large_file`: v2 added `action`, `contentLength` and `contentSha1` to the answer; v1 has none.
///
/// Uploads, `b2_get_file_info` and `b2_finish_large_file` already said `contentLength` in v1.
/// - SeeAlso: https://www.backblaze.com/docs/cloud-storage-native-api-versions
enum VersionOne {
    static func adapt(_ operation: String, _ result: JSON) -> JSON {
        switch operation {
        case "b2_list_file_names", "b2_list_file_versions":
            guard case .object(let pairs) = result else { return result }
            return .object(pairs.map { key, value in
                guard key == "files", case .array(let files) = value else { return (key, value) }
                return (key, .array(files.map { renaming("contentLength", to: "size", in: $0) }))
            })
        case "b2_start_large_file":
            guard case .object(let pairs) = result else { return result }
            return .object(pairs.filter { !["action", "contentLength", "contentSha1"].contains($0.0) })
        default:
            return result
        }
    }

    private static func renaming(_ old: String, to new: String, in object: JSON) -> JSON {
        guard case .object(let pairs) = object else { return object }
        return .object(pairs.map { ($0.0 == old ? new : $0.0, $0.1) })
    }
}
