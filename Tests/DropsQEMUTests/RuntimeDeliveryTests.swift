import DropsModel
import DropsQEMU
import Testing

/// What a run says at its start about the tree's run-time files, for each kind of network.
@Suite struct RuntimeDeliveryTests {
    func manifest(port: String?, runtime: Bool = true) -> Manifest {
        let file = Manifest.Module(name: "hello", role: .data, delivery: .runtime, path: "bin/hello", size: 3, sha256: "aa",
                                   cmdline: "hello", source: "generated", inspection: "data", modaddr: nil)
        return Manifest(
            format: 1, tool: "drops test",
            profile: .init(name: "l4env", description: "", api: .l4env, arch: .ia32, sha256: ""),
            variables: port.map { ["runtime_port": $0] } ?? [:], firstStage: file,
            modules: [], runtimeFiles: runtime ? [file] : [], bootPaths: [], milestones: [], files: [])
    }

    @Test func noRuntimeFilesNothingToSay() {
        #expect(RuntimeDelivery.assess(manifest(port: nil, runtime: false), network: .user(port: 4000)) == nil)
    }

    @Test func portSixtyNineCannotReachUsUnderUserNetworking() throws {
        let delivery = try #require(RuntimeDelivery.assess(manifest(port: nil), network: .user(port: 41234)))
        #expect(!delivery.deliverable)
        #expect(delivery.reason.contains("--network private") && delivery.reason.contains("--set runtime_port=6969"), "\(delivery.reason)")
        #expect(delivery.summary.hasPrefix("run-time files (bin/hello) cannot be delivered: "))
    }

    @Test func theProfilesPortIsOurs() throws {
        let delivery = try #require(RuntimeDelivery.assess(manifest(port: "6969"), network: .user(port: 6969)))
        #expect(delivery.deliverable, "\(delivery.reason)")
        let other = try #require(RuntimeDelivery.assess(manifest(port: "6969"), network: .user(port: 7000)))
        #expect(!other.deliverable && other.reason.contains("--tftp-port 6969"), "\(other.reason)")
    }

    @Test func labNetworkServesPortSixtyNine() throws {
        #expect(try #require(RuntimeDelivery.assess(manifest(port: nil), network: .lab)).deliverable)
        let moved = try #require(RuntimeDelivery.assess(manifest(port: "6969"), network: .lab))
        #expect(!moved.deliverable && moved.reason.contains("runtime_port=69"), "\(moved.reason)")
    }

    @Test func noServerNoDelivery() throws {
        #expect(try #require(RuntimeDelivery.assess(manifest(port: nil), network: .none("--chain qemu boots without a network server"))).deliverable == false)
        #expect(try #require(RuntimeDelivery.assess(manifest(port: nil), network: .builtinTFTP)).reason.contains("QEMU's own TFTP"))
    }
}
