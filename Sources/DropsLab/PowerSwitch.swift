import DropsModel
import Foundation

public enum PowerState: String, Sendable, Equatable {
    case on, off
}

/// One way to switch a lab PC: the primitive commands, without waiting for their effect.
public protocol PowerSwitch: Sendable {
    /// What drivers call the way this switch works, for messages (`IPMI 10.0.0.50:623`).
    var kind: String { get }
    func on() throws(LabError)
    func off() throws(LabError)
    /// Off and on again; nil when the switch has no cycle of its own.
    func cycle() throws(LabError) -> Bool
    /// The state now, or nil when this switch cannot tell.
    func state() throws(LabError) -> PowerState?
}

/// A BMC through ipmitool: `chassis power on|off|cycle|status`.
public struct IPMIPowerSwitch: PowerSwitch {
    public let host: String
    public let access: IPMIAccess
    /// Seconds one ipmitool call may take (it retries a lost datagram itself).
    public var commandSeconds = 20.0

    public init(host: String, access: IPMIAccess) {
        self.host = host
        self.access = access
    }

    public var kind: String { "IPMI \(access.host):\(access.port)" }

    /// ipmitool's words for this BMC; the password is read by ipmitool from the file.
    public var arguments: [String] {
        ["ipmitool", "-I", access.interface, "-H", access.host, "-p", String(access.port), "-U", access.user, "-f", access.passwordFile]
            + (access.interface == "lanplus" ? ["-C", String(access.cipherSuite)] : [])
    }

    func chassis(_ action: String) throws(LabError) -> String {
        do { try access.checkPasswordFile() } catch { throw .power(host: host, action: action, reason: error.description) }
        let run: ProgramRun
        do { run = try ProgramRun.run(arguments + ["chassis", "power", action], seconds: commandSeconds) } catch {
            throw .power(host: host, action: action, reason: "\(error) (install Debian's ipmitool)")
        }
        guard run.status == 0, !run.timedOut else {
            throw .power(host: host, action: action, reason: "ipmitool chassis power \(action) against \(kind): \(run.failure)")
        }
        return run.output
    }

    public func on() throws(LabError) { _ = try chassis("on") }
    public func off() throws(LabError) { _ = try chassis("off") }
    public func cycle() throws(LabError) -> Bool {
        _ = try chassis("cycle")
        return true
    }

    public func state() throws(LabError) -> PowerState? {
        let text = try chassis("status").lowercased()
        if text.contains("chassis power is on") { return .on }
        if text.contains("chassis power is off") { return .off }
        throw .power(host: host, action: "status", reason: "ipmitool said neither on nor off: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
}

/// Wake-on-LAN: switches on only, and cannot tell the state.
public struct WakeOnLANSwitch: PowerSwitch {
    public let host: String
    public let mac: String
    public let wake: WakeOnLAN
    /// The interface the packet leaves by (the lab network's), or nil for the routing table's choice.
    public var interface: String?

    public init(host: String, mac: String, wake: WakeOnLAN, interface: String? = nil) {
        self.host = host
        self.mac = mac
        self.wake = wake
        self.interface = interface
    }

    public var kind: String { "Wake-on-LAN to \(wake.broadcast):\(wake.port)" }

    /// Six bytes 0xFF, then the MAC sixteen times.
    public static func magicPacket(mac: String) -> [UInt8]? {
        let bytes = mac.split(separator: ":").compactMap { UInt8($0, radix: 16) }
        guard bytes.count == 6 else { return nil }
        return [UInt8](repeating: 0xFF, count: 6) + (0..<16).flatMap { _ in bytes }
    }

    public func on() throws(LabError) {
        guard let packet = Self.magicPacket(mac: mac) else { throw .power(host: host, action: "on", reason: "\(mac) is not a MAC address") }
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw .power(host: host, action: "on", reason: "no UDP socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_BROADCAST, &yes, socklen_t(MemoryLayout<Int32>.size))
        if let interface {
            let bound = interface.withCString { setsockopt(descriptor, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
            guard bound == 0 else { throw .power(host: host, action: "on", reason: "cannot send on \(interface): \(String(cString: strerror(errno)))") }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(wake.port).bigEndian
        guard inet_pton(AF_INET, wake.broadcast, &address.sin_addr) == 1 else {
            throw .power(host: host, action: "on", reason: "\(wake.broadcast) is not an IPv4 address")
        }
        let sent = packet.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard sent == packet.count else { throw .power(host: host, action: "on", reason: "the magic packet was not sent: \(String(cString: strerror(errno)))") }
    }

    public func off() throws(LabError) {
        throw .unsupported(host: host, action: "off", reason: "Wake-on-LAN only switches machines on; add off = [\"command\", …] to its power block, or use --keep-on")
    }

    public func cycle() throws(LabError) -> Bool { false }
    public func state() throws(LabError) -> PowerState? { nil }
}

/// Command hooks: argument vectors for on, off, cycle and status (which prints `on` or `off`).
public struct CommandPowerSwitch: PowerSwitch {
    public let host: String
    public let power: PowerControl
    /// Switches on when there is no on (or cycle) command: Wake-on-LAN with an off hook.
    public let wake: WakeOnLANSwitch?
    public var commandSeconds = 60.0

    public init(host: String, power: PowerControl, wake: WakeOnLANSwitch? = nil) {
        self.host = host
        self.power = power
        self.wake = wake
    }

    public var kind: String { "power commands" }

    func run(_ words: [String]?, action: String) throws(LabError) -> String {
        guard let words else {
            throw .unsupported(host: host, action: action, reason: "its power block has no \(action) = [\"command\", …]")
        }
        let run: ProgramRun
        do { run = try ProgramRun.run(words, seconds: commandSeconds) } catch { throw .power(host: host, action: action, reason: "\(error)") }
        guard run.status == 0, !run.timedOut else {
            throw .power(host: host, action: action, reason: "\(words.joined(separator: " ")): \(run.failure)")
        }
        return run.output
    }

    public func on() throws(LabError) {
        if power.on == nil && power.cycle == nil, let wake { return try wake.on() }
        _ = try run(power.on ?? power.cycle, action: "on")
    }
    public func off() throws(LabError) { _ = try run(power.off, action: "off") }
    public func cycle() throws(LabError) -> Bool {
        guard let cycle = power.cycle else { return false }
        _ = try run(cycle, action: "cycle")
        return true
    }

    public func state() throws(LabError) -> PowerState? {
        guard power.status != nil else { return nil }
        let text = try run(power.status, action: "status")
        let word = text.split(whereSeparator: { $0.isWhitespace }).first.map { $0.lowercased() }
        guard let word, let state = PowerState(rawValue: word) else {
            throw .power(host: host, action: "status", reason: "\(power.status!.joined(separator: " ")) printed '\(text.trimmingCharacters(in: .whitespacesAndNewlines))'; a status command prints on or off")
        }
        return state
    }
}

/// Switches a host and makes sure it took: after each command the state (where the switch
/// can tell) must show within the power block's deadline, or it is a power failure.
public struct PowerController: Sendable {
    public let host: String
    public let power: any PowerSwitch
    public let deadline: Double
    /// Seconds between status polls.
    public var pollInterval = 0.5

    public init(host: String, power: any PowerSwitch, deadline: Double) {
        self.host = host
        self.power = power
        self.deadline = deadline
    }

    /// The switch a host's power block describes; `interface` is where Wake-on-LAN goes out.
    public static func forHost(_ host: HostTable.Host, interface: String? = nil) throws(LabError) -> PowerController {
        guard let control = host.power else {
            throw .unsupported(host: host.name, action: "on", reason: "the hosts file gives it no power block (\(host.location))")
        }
        let power: any PowerSwitch
        if let ipmi = control.ipmi {
            power = IPMIPowerSwitch(host: host.name, access: ipmi)
        } else {
            let wake = control.wakeOnLAN.map { WakeOnLANSwitch(host: host.name, mac: host.mac, wake: $0, interface: interface) }
            let hooks = control.on != nil || control.off != nil || control.cycle != nil || control.status != nil
            if let wake, !hooks {
                power = wake
            } else {
                power = CommandPowerSwitch(host: host.name, power: control, wake: wake)
            }
        }
        return PowerController(host: host.name, power: power, deadline: control.deadline)
    }

    /// Starts the machine from power-on: cycles it when it is on already (where that can be
    /// told), so every boot starts from the firmware.
    public func powerOnFresh() throws(LabError) {
        if try power.state() == .on {
            if try power.cycle() {
                try waitFor(.on, action: "cycle")
                return
            }
            try power.off()
            try waitFor(.off, action: "off")
        }
        try power.on()
        try waitFor(.on, action: "on")
    }

    public func powerOff() throws(LabError) {
        try power.off()
        try waitFor(.off, action: "off")
    }

    func waitFor(_ wanted: PowerState, action: String) throws(LabError) {
        let end = Date().addingTimeInterval(deadline)
        var last: PowerState?
        repeat {
            last = try power.state()
            guard let seen = last else { return }
            if seen == wanted { return }
            usleep(UInt32(pollInterval * 1_000_000))
        } while Date() < end
        throw .power(host: host, action: action, reason: "\(power.kind) still reports \(last?.rawValue ?? "nothing") \(Int(deadline)) s after \(action) (the power block's deadline)")
    }
}
