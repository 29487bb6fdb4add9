import Foundation
import HTTPServer

/// `http://supervisor/core/api/<path>` (SUP `api/proxy.py`): checks the add-on's access itself, answers
/// `502: Bad Gateway` while Core is down, and passes the request to a small simulated Core whose answers
/// follow Core's REST API (`homeassistant/components/api/__init__.py`).
enum CoreProxy {
    static func handle(_ request: HTTPRequest, context: Context) async throws -> HTTPResponse {
        // `_check_access`: Authorization's last word, else X-Ha-Access; X-Supervisor-Token is not read here.
        // An unknown token and an add-on without homeassistant_api both get HTTPUnauthorized.
        let token: String = if let authorization = request.headers["Authorization"] {
            String(authorization.split(separator: " ", omittingEmptySubsequences: false).last ?? "")
        } else {
            request.headers["X-Ha-Access"] ?? ""
        }
        guard token == context.configuration.token, context.configuration.homeassistantAPI else { throw PlainError.unauthorized }
        // `check_api_state()` fails while Core is stopped (a restore) or restarting.
        if await context.state.coreStopped { throw PlainError.badGateway }
        if await context.faults.takeCoreOutage() { throw PlainError.badGateway }
        let body = try await request.body.collect()
        let path = request.pathParameters["path"] ?? ""
        let response = await SimulatedCore.handle(request.method, path: path, query: request.head.query, body: body, context: context)
        await context.state.recordCoreCall(CoreCall(method: request.method.rawValue, path: request.path, query: request.head.query,
                                                    body: body.isEmpty ? nil : try? JSONValue.parse(body), status: response.status.code))
        return response
    }
}

/// The parts of Core's REST API an add-on uses: states, services (persistent notifications, notify) and events.
enum SimulatedCore {
    /// The Supervisor's Core user, which owns what the proxy does.
    static let supervisorUserID = "2b1f5e2a8c6d4e0f9a7b3c1d5e6f7a8b"

    static func handle(_ method: HTTPMethod, path: String, query: String, body: [UInt8], context: Context) async -> HTTPResponse {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch (method, parts.first ?? "", parts.count) {
        case (.get, "", _) where path.isEmpty:
            return message("API running.")
        case (.get, "config", 1):
            return json(["components": .strings(["api", "hassio", "persistent_notification", "notify"]), "location_name": "Home",
                         "time_zone": .string(context.configuration.timezone), "version": .string(context.configuration.homeassistantVersion),
                         "state": "RUNNING", "unit_system": ["length": "km", "temperature": "°C"]])
        case (.get, "states", 1):
            return json(.array(await context.state.allStates().map(stateJSON)))
        case (_, "states", 2):
            return await states(method, entityID: parts[1], body: body, context: context)
        case (.post, "services", 3):
            return await service(domain: parts[1], service: parts[2], query: query, body: body, context: context)
        case (.post, "events", 2):
            return event(parts[1], body: body)
        case (_, "states", _), (_, "services", 3), (_, "events", 2):
            return PlainError.methodNotAllowed.response
        default:
            return PlainError.notFound.response
        }
    }

    // MARK: States

    private static func states(_ method: HTTPMethod, entityID: String, body: [UInt8], context: Context) async -> HTTPResponse {
        switch method {
        case .get:
            guard let state = await context.state.state(entityID) else { return message("Entity not found.", status: 404) }
            return json(stateJSON(state))
        case .delete:
            return await context.state.removeState(entityID) ? message("Entity removed.") : message("Entity not found.", status: 404)
        default:
            guard let data = try? JSONValue.parse(body.isEmpty ? Array("{}".utf8) : body), case .object(let object) = data else {
                return message("Invalid JSON specified.", status: 400)
            }
            guard let raw = object["state"], !raw.isNull else { return message("No state specified.", status: 400) }
            guard validEntityID(entityID) else { return message("Invalid entity ID specified.", status: 400) }
            // `async_set` stores `str(new_state)`; longer than 255 characters is refused.
            let text = raw.stringValue ?? raw.pythonRepr
            guard text.count <= 255 else { return message("Invalid state specified.", status: 400) }
            let attributes = object["attributes"]?.objectValue?.dictionary ?? [:]
            let (state, created) = await context.state.setState(entityID, state: text, attributes: attributes)
            var response = json(stateJSON(state), status: created ? 201 : 200)
            response.headers.add("Location", "/api/states/\(entityID)")
            return response
        }
    }

    /// `valid_entity_id`: `domain.object_id`, lower-case letters, digits and `_`, no leading, trailing or double `_`.
    static func validEntityID(_ entityID: String) -> Bool {
        let halves = entityID.split(separator: ".", omittingEmptySubsequences: false)
        guard halves.count == 2, !entityID.contains("__") else { return false }
        return halves.allSatisfy { half in
            !half.isEmpty && !half.hasPrefix("_") && !half.hasSuffix("_")
                && half.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
        }
    }

    static func stateJSON(_ state: EntityState) -> JSONValue {
        var attributes = JSONObject()
        for key in state.attributes.keys.sorted() { attributes[key] = state.attributes[key] }
        return ["entity_id": .string(state.entityID), "state": .string(state.state), "attributes": .object(attributes),
                "last_changed": .string(state.lastChanged), "last_reported": .string(state.lastReported), "last_updated": .string(state.lastUpdated),
                "context": ["id": .string(contextID()), "parent_id": nil, "user_id": .string(supervisorUserID)]]
    }

    /// A ULID-shaped context ID (26 Crockford base-32 characters).
    private static func contextID() -> String {
        let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        return String((0..<26).map { _ in alphabet.randomElement()! })
    }

    // MARK: Services

    /// Services with their fields (required ones first); anything else does not exist.
    private static func schema(domain: String, service: String, context: Context) -> (required: [String], optional: [String])? {
        switch (domain, service) {
        case ("persistent_notification", "create"): (["message"], ["title", "notification_id"])
        case ("persistent_notification", "dismiss"): (["notification_id"], [])
        case ("persistent_notification", "dismiss_all"): ([], [])
        case ("notify", "persistent_notification"): (["message"], ["title", "data"])
        case ("notify", let name) where context.configuration.notifyServices.contains(name): (["message"], ["title", "target", "data"])
        default: nil
        }
    }

    private static func service(domain: String, service: String, query: String, body: [UInt8], context: Context) async -> HTTPResponse {
        let data: JSONValue
        do {
            data = body.isEmpty ? .object([:]) : try JSONValue.parse(body)
        } catch {
            return message("Data should be valid JSON.", status: 400)
        }
        // `has_service` false, or the service schema refusing the data (`vol.Invalid`): HTTPBadRequest.
        guard let fields = schema(domain: domain, service: service, context: context), case .object(let object) = data else {
            return PlainError.badRequest.response
        }
        let known = Set(fields.required + fields.optional)
        guard fields.required.allSatisfy({ object[$0] != nil && !(object[$0]!.isNull) }), object.keys.allSatisfy(known.contains) else {
            return PlainError.badRequest.response
        }
        if query.split(separator: "&").contains(where: { $0 == "return_response" || $0.hasPrefix("return_response=") }) {
            return message("Service does not support responses. Remove return_response from request.", status: 400)
        }
        func text(_ key: String) -> String? { object[key].map { $0.stringValue ?? $0.pythonRepr } }
        switch (domain, service) {
        case ("persistent_notification", "create"), ("notify", "persistent_notification"):
            let id = text("notification_id") ?? String(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(26))
            await context.state.notify(PersistentNotification(notificationID: id, title: text("title"), message: text("message") ?? ""))
        case ("persistent_notification", "dismiss"):
            await context.state.dismiss(text("notification_id"))
        case ("persistent_notification", "dismiss_all"):
            await context.state.dismiss(nil)
        default:
            break // a notify service of a mobile app: delivered
        }
        // The states the call changed: none (notifications are not entities since 2023.6).
        return json([])
    }

    // MARK: Events

    private static func event(_ eventType: String, body: [UInt8]) -> HTTPResponse {
        if !body.isEmpty {
            guard let data = try? JSONValue.parse(body) else { return message("Event data should be valid JSON.", status: 400) }
            guard data.isNull || data.objectValue != nil else { return message("Event data should be a JSON object", status: 400) }
        }
        return message("Event \(eventType) fired.")
    }

    // MARK: Answers

    /// `HomeAssistantView.json`: `Content-Type: application/json`.
    static func json(_ value: JSONValue, status: Int = 200) -> HTTPResponse {
        HTTPResponse(Envelope.httpStatus(status), headers: HTTPHeaders([("Content-Type", "application/json")]), body: .bytes(value.encoded()))
    }

    /// `HomeAssistantView.json_message`: `{"message": …}`.
    static func message(_ text: String, status: Int = 200) -> HTTPResponse {
        json(["message": .string(text)], status: status)
    }
}
