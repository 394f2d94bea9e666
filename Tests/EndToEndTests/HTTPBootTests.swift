import DropsImage
import DropsModel
import DropsTestSupport
import Foundation
import Testing

/// Trees built with --http-base boot with only the first stage over TFTP: the kernel and
/// every module come over HTTP, from drops-run's own listener (--http) or from Debian's nginx
/// serving the output folder, as a lab's web server would.
@Suite(.serialized) struct HTTPBootTests {
    /// A port on this host that QEMU's guests reach as 10.0.2.2:PORT.
    static func freePort(_ offset: Int) -> Int { 20000 + Int(getpid() % 5000) * 8 + offset }

    func build(_ profile: String, out: TemporaryDirectory, base: String) throws -> BuildResult {
        try #require(SelftestBootTests.ready, "run `make probe` and install qemu-system-x86 first")
        let directory: String
        if profile == "short" {
            out.write("profiles/short.toml", text: NetworkBootTests.shortProfile)
            directory = out.path + "/profiles"
        } else {
            directory = Repository.profiles
        }
        let plan = try Planner.plan(try ProfileLoader(directory: directory).load(profile), options: PlanOptions(variables: ["http_base": base]))
        return try ImageBuilder().build(plan, outputRoot: out.path + "/out")
    }

    func expectModulesOverHTTP(_ run: DropsRunTool.Result, _ result: BuildResult, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(run.status == 0, "\(run.stderr.suffix(3000))", sourceLocation: sourceLocation)
        #expect(run.verifiedModules == result.manifest.modules.count, "\(run.failedModules)", sourceLocation: sourceLocation)
        let overHTTP = run.served(via: "http")
        let overTFTP = run.served(via: "tftp")
        for path in [result.manifest.firstStage.path] + result.manifest.modules.map(\.path) {
            #expect(overHTTP.contains(path) && !overTFTP.contains(path), "\(path): http \(overHTTP.sorted()), tftp \(overTFTP.sorted())", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [("selftest", "ipxe"), ("selftest", "pxelinux"), ("short", "ipxe"), ("short", "grub")])
    func modulesComeOverDropsRunsOwnHTTP(profile: String, chain: String) throws {
        let out = TemporaryDirectory("drops-http-boot")
        let port = Self.freePort(chain == "pxelinux" ? 1 : chain == "grub" ? 4 : profile == "short" ? 2 : 0)
        let result = try build(profile, out: out, base: "http://10.0.2.2:\(port)")
        let http = result.manifest.bootPaths.first { $0.name == (chain == "grub" ? "grub2" : chain) }
        #expect(http?.http == true, "the manifest says the path fetches over HTTP: \(String(describing: http))")
        let run = try DropsRunTool.run([result.directory, "--chain", chain, "--http", "--json"])
        expectModulesOverHTTP(run, result)
        #expect(run.stderr.contains("over HTTP on 127.0.0.1:\(port)"), "\(run.stderr.prefix(1500))")
    }

    /// The scale-out path: nginx serves the output folder, drops-run serves only the first stage.
    @Test func nginxServesEverythingAfterTheFirstStage() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx"), "install nginx-light (make deps)")
        let out = TemporaryDirectory("drops-http-nginx")
        let port = Self.freePort(3)
        let result = try build("selftest", out: out, base: "http://10.0.2.2:\(port)")
        let access = out.path + "/access.log"
        out.write("nginx.conf", text: """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(out.path)/nginx.pid;
            error_log \(out.path)/error.log;
            events { worker_connections 64; }
            http {
                access_log \(access);
                client_body_temp_path \(out.path)/body;
                proxy_temp_path \(out.path)/proxy;
                fastcgi_temp_path \(out.path)/fastcgi;
                uwsgi_temp_path \(out.path)/uwsgi;
                scgi_temp_path \(out.path)/scgi;
                server {
                    listen 127.0.0.1:\(port);
                    root \(out.path)/out;
                }
            }
            """)
        let nginx = try ChildProcess(["/usr/sbin/nginx", "-c", out.path + "/nginx.conf", "-p", out.path], output: out.path + "/nginx.out", errors: out.path + "/nginx.out")
        defer { nginx.stop() }
        var listening = false
        for _ in 0..<50 where !listening {
            usleep(100_000)
            listening = (try? ChildProcess.run(["/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/selftest/manifest.json"]))?.stdout == "200"
        }
        try #require(listening, "nginx did not start: \((try? String(contentsOfFile: out.path + "/nginx.out", encoding: .utf8)) ?? "")")
        let run = try DropsRunTool.run([result.directory, "--chain", "pxelinux", "--json"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.verifiedModules == result.manifest.modules.count, "\(run.failedModules)")
        #expect(run.stderr.contains("fetches its kernel and modules from http://10.0.2.2:\(port)"), "\(run.stderr.prefix(1500))")
        let log = (try? String(contentsOfFile: access, encoding: .utf8)) ?? ""
        for path in [result.manifest.firstStage.path] + result.manifest.modules.map(\.path) {
            #expect(log.contains("\"GET /selftest/\(path) HTTP/1.") && log.contains(" 200 "), "nginx served \(path): \(log.suffix(1500))")
            #expect(!run.served(via: "tftp").contains(path), "\(path) came over TFTP")
        }
    }
}
