import DropsModel
import DropsTestSupport
import Foundation
import Testing

@testable import DropsImage

/// The four boot-menu renderers, checked line by line on a small plan.
@Suite struct RendererTests {
    let folder = TemporaryDirectory("drops-render")

    /// Three boot modules and one run-time file, in the profile order the menus must keep.
    static func profileText(prefix: String?, description: String) -> String {
        """
        description = "\(description)"
        api = "multiboot"
        arch = "ia32"

        [variables]
        \(prefix.map { "tftp_prefix = \"\($0)\"" } ?? "")

        [loader]
        name = "boot"
        role = "multiboot"
        file = "bootstrap"
        args = "-serial"

        [[module]]
        name = "kern"
        role = "kernel"
        file = "fiasco"
        args = "-nokdb -comport 1"

        [[module]]
        name = "s0"
        role = "sigma0"
        file = "sigma0"

        [[module]]
        name = "late.cfg"
        role = "config"
        delivery = "runtime"
        content = "fetched later"

        [[module]]
        name = "app"
        role = "server"
        file = "names"
        args = 'say "hi" cost=$5'
        modaddr = "0x02000000"
        """
    }

    func plan(prefix: String? = "/srv/tftp/demo/", description: String = "renderer test",
              variables: [String: String] = [:]) throws -> BuildPlan {
        let components = Repository.fakeComponents(in: folder)
        return try writtenPlan(Self.profileText(prefix: prefix, description: description), name: "demo", in: folder,
                               options: PlanOptions(searchPath: [components], variables: variables))
    }

    func menu(prefix: String? = "/srv/tftp/demo/", description: String = "renderer test",
              variables: [String: String] = [:]) throws -> BootMenu {
        BootMenu(plan: try plan(prefix: prefix, description: description, variables: variables))
    }

    /// The demo plan's first stage without arguments and `count` modules `m0`, `m1`, … with `args`.
    func menu(modules count: Int, args: String = "") throws -> BootMenu {
        var plan = try plan()
        let template = plan.modules[0]
        plan.firstStage.args = ""
        plan.modules = (0..<count).map { index in
            var module = template
            module.name = "m\(index)"
            module.args = args
            return module
        }
        return BootMenu(plan: plan)
    }

    func lines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    // MARK: the menu model

    @Test func menuHoldsTheBootChainInProfileOrder() throws {
        let menu = try menu()
        #expect(menu.title == "demo: renderer test")
        #expect(menu.profile == "demo")
        #expect(menu.tftpPrefix == "/srv/tftp/demo")
        #expect(menu.firstStage == BootMenu.Image(name: "boot", path: "bin/boot", args: "-serial", modaddr: nil))
        #expect(menu.modules.map(\.name) == ["kern", "s0", "app"])
        #expect(menu.modules.map(\.path) == ["bin/kern", "bin/s0", "bin/app"])
        #expect(menu.modules.map(\.commandLine) == ["kern -nokdb -comport 1", "s0", "app say \"hi\" cost=$5"])
        #expect(menu.modules.map(\.modaddr) == [nil, nil, "0x02000000"])
    }

    @Test func titleWithoutDescriptionIsTheProfileName() throws {
        #expect(try menu(description: "").title == "demo")
    }

    @Test func commandLineBytesCountEveryLineWithItsNUL() throws {
        // "boot -serial" 12, "kern -nokdb -comport 1" 22, "s0" 2, "app say \"hi\" cost=$5" 20; plus 4 NULs.
        #expect(try menu().commandLineBytes == 12 + 22 + 2 + 20 + 4)
        // UTF-8 bytes, not characters: "ü" is two bytes.
        #expect(try menu(modules: 1, args: "ü").commandLineBytes == 5 + 6)
    }

    // MARK: iPXE

    /// With http_base the loaders that speak HTTP name every image by its URL under the base.
    @Test func httpBaseTurnsPathsIntoURLs() throws {
        let menu = try menu(variables: ["http_base": "http://10.0.0.1:8080/"])
        let script = lines(IPXEScript.render(menu))
        #expect(script.contains("kernel --name boot http://10.0.0.1:8080/srv/tftp/demo/bin/boot -serial || goto failed"), "\(script)")
        #expect(script.contains("module --name s0 http://10.0.0.1:8080/srv/tftp/demo/bin/s0 || goto failed"))
        let pxelinux = PXELinuxConfig.render(menu)
        #expect(pxelinux.contains("APPEND http://10.0.0.1:8080/srv/tftp/demo/bin/boot -serial --- http://10.0.0.1:8080/srv/tftp/demo/bin/kern -nokdb"), "\(pxelinux)")
        #expect(IPXEMultibootLimits.uriBase(menu) == "http://10.0.0.1:8080/srv/tftp/demo/")
        let paths = BootPathAnalysis.paths(menu: menu, supportFiles: BootLoaderFiles.pxelinux.map(\.treePath))
        #expect(paths.first { $0.name == "ipxe" }?.http == true)
        #expect(paths.first { $0.name == "pxelinux" }?.http == true)
        #expect(paths.first { $0.name == "grub2" }?.http == true)
        let grub = Grub2Config.render(menu)
        #expect(grub.contains("  multiboot '(http,10.0.0.1:8080)/srv/tftp/demo/bin/boot' boot -serial"), "\(grub)")
        #expect(paths.first { $0.name == "qemu-multiboot" }?.http == false)
        // Without it: TFTP as before, and the manifest says nothing of HTTP.
        let plain = try self.menu()
        #expect(!IPXEScript.render(plain).contains("http://"))
        #expect(BootPathAnalysis.paths(menu: plain, supportFiles: []).allSatisfy { $0.http == nil })
    }

    @Test func ipxeDirectFormNamesEveryImage() throws {
        #expect(lines(IPXEScript.render(try menu())) == [
            "#!ipxe",
            "# demo: renderer test",
            "# Generated by drops from profile demo; paths are relative to this script.",
            "kernel --name boot bin/boot -serial || goto failed",
            "module --name kern bin/kern -nokdb -comport 1 || goto failed",
            "module --name s0 bin/s0 || goto failed",
            "module --name app bin/app say \"hi\" cost=$5 || goto failed",
            "boot || goto failed",
            ":failed",
            "echo drops: booting demo failed",
            "shell",
            "",
        ])
    }

    @Test func ipxeTakesExactlyEightModules() throws {
        let menu = try menu(modules: 8)
        #expect(IPXEMultibootLimits.problem(with: menu) == nil)
        let script = lines(IPXEScript.render(menu))
        #expect(script[3] == "kernel --name boot bin/boot || goto failed")
        #expect(script[4..<12] == ArraySlice((0..<8).map { "module --name m\($0) bin/m\($0) || goto failed" }))
        #expect(script[12] == "boot || goto failed")
        #expect(!script.contains { $0.hasPrefix("chain") })
    }

    @Test func ipxeChainsToPXELinuxForNineModules() throws {
        let menu = try menu(modules: 9)
        #expect(IPXEMultibootLimits.problem(with: menu) == "9 modules (iPXE keeps at most 8)")
        #expect(lines(IPXEScript.render(menu)) == [
            "#!ipxe",
            "# demo: renderer test",
            "# Generated by drops from profile demo; paths are relative to this script.",
            "# This chain has 9 modules (iPXE keeps at most 8): iPXE's multiboot loader would drop the rest",
            "# silently, so PXELINUX (mboot.c32) boots it from pxelinux.cfg/default.",
            "chain lpxelinux.0 || goto failed",
            ":failed",
            "echo drops: booting demo failed",
            "shell",
            "",
        ])
    }

    @Test func ipxeTakesExactly512CommandLineBytes() throws {
        // iPXE copies each image's URI: "tftp://255.255.255.255:65535/srv/tftp/demo/" (43 bytes,
        // the longest host and port) + path, then " ARGS" and a NUL. "boot": 43 + 8 + 1 = 52;
        // "m0 ARGS": 43 + 6 + 1 + ARGS + 1, so 103 + ARGS in all.
        let fits = try menu(modules: 1, args: String(repeating: "x", count: 512 - 103))
        #expect(IPXEMultibootLimits.uriBase(fits) == "tftp://255.255.255.255:65535/srv/tftp/demo/")
        #expect(IPXEMultibootLimits.commandLineBytes(fits) == 512)
        #expect(IPXEMultibootLimits.problem(with: fits) == nil)
        #expect(IPXEScript.render(fits).contains("module --name m0 bin/m0 \(String(repeating: "x", count: 409)) || goto failed\n"))

        let over = try menu(modules: 1, args: String(repeating: "x", count: 512 - 103 + 1))
        #expect(IPXEMultibootLimits.commandLineBytes(over) == 513)
        #expect(IPXEMultibootLimits.problem(with: over) == "up to 513 bytes of command lines with their URIs (iPXE keeps at most 512)")
        let script = IPXEScript.render(over)
        #expect(script.contains("\nchain lpxelinux.0 || goto failed\n"))
        #expect(!script.contains("module --name"))
        #expect(!script.contains("kernel --name"))
    }

    @Test func ipxeURIUsesTheServerAddressWhenKnown() throws {
        let known = try menu(modules: 1, args: "")
        var plan = try plan(variables: ["server_ip": "10.0.2.2"])
        plan.modules = Array(plan.modules.prefix(1))
        #expect(IPXEMultibootLimits.uriBase(BootMenu(plan: plan)) == "tftp://10.0.2.2:65535/srv/tftp/demo/")
        #expect(IPXEMultibootLimits.commandLineBytes(BootMenu(plan: plan)) < IPXEMultibootLimits.commandLineBytes(known) + 43)
    }

    @Test func ipxeNeverLoadsALiteralDollarBrace() throws {
        var plan = try plan()
        plan.modules[0].args = "${HOME}"
        let menu = BootMenu(plan: plan)
        #expect(IPXEMultibootLimits.problem(with: menu) == "a literal ${ in a command line (iPXE would expand it)")
        #expect(IPXEScript.render(menu).contains("chain lpxelinux.0"))
    }

    /// iPXE's multiboot_add_cmdline copies the resolved URI (not --name), " ARGS" and a NUL; tftp://h/ is the shortest URI base.
    static func ipxeCopiedBytes(_ image: BootMenu.Image) -> Int {
        let uri = "tftp://h/" + image.path
        return uri.utf8.count + (image.args.isEmpty ? 0 : 1 + image.args.utf8.count) + 1
    }

    @Test func ipxeDirectFormFitsWhatIPXECopies() throws {
        // Just within the builder's estimate, so boot.ipxe loads the chain itself.
        let menu = try menu(modules: 1, args: String(repeating: "x", count: 409))
        try #require(IPXEMultibootLimits.problem(with: menu) == nil)
        let copied = ([menu.firstStage] + menu.modules).reduce(0) { $0 + Self.ipxeCopiedBytes($1) }
        #expect(copied <= IPXEMultibootLimits.maxCommandLineBytes,
                "boot.ipxe loads the chain itself, but iPXE needs \(copied) of its 512 bytes and cuts the rest")
    }

    @Test func ipxeNamesBothLimitsWhenBothAreExceeded() throws {
        let menu = try menu(modules: 9, args: String(repeating: "y", count: 60))
        let problem = try #require(IPXEMultibootLimits.problem(with: menu))
        #expect(problem == "9 modules (iPXE keeps at most 8) and up to \(IPXEMultibootLimits.commandLineBytes(menu)) bytes of command lines with their URIs (iPXE keeps at most 512)")
        #expect(IPXEScript.render(menu).contains("# This chain has \(problem): "))
    }

    /// iPXE's expand_settings with no settings set: the last "${" before the first "}" expands to nothing; no escape exists.
    static func ipxeExpand(_ line: String) -> String {
        var text = Array(line.utf8)
        while true {
            var start: Int?
            var end: Int?
            for index in text.indices {
                if text[index] == UInt8(ascii: "$"), index + 1 < text.count, text[index + 1] == UInt8(ascii: "{") { start = index }
                if start != nil, text[index] == UInt8(ascii: "}") {
                    end = index
                    break
                }
            }
            guard let start, let end else { break }
            text.replaceSubrange(start...end, with: [])
        }
        return String(decoding: text, as: UTF8.self)
    }

    @Test func ipxeExpansionModelMatchesIPXE() {
        #expect(Self.ipxeExpand("a ${x} b") == "a  b")
        #expect(Self.ipxeExpand("a $${x} b") == "a $ b")
        #expect(Self.ipxeExpand("cost=$5 ${a${b}}!") == "cost=$5 !")
    }

    @Test func ipxeLinesGiveTheKernelTheLiteralArguments() throws {
        // After iPXE's own ${…} expansion each line must still carry the profile's arguments.
        var plan = try plan()
        plan.modules[0].args = "cost=$5 {braces} $x }{"
        let menu = BootMenu(plan: plan)
        let images = [menu.firstStage] + menu.modules
        let commands = lines(IPXEScript.render(menu)).filter { $0.hasPrefix("kernel ") || $0.hasPrefix("module ") }
        #expect(commands.count == images.count)
        for line in commands {
            let words = Self.ipxeExpand(line).split(whereSeparator: { $0 == " " }).map(String.init)
            // kernel|module --name NAME PATH ARGS… || goto failed
            #expect(words.count >= 6)
            guard words.count >= 6, let image = images.first(where: { $0.name == words[2] }) else {
                Issue.record("unexpected line: \(line)")
                continue
            }
            let received = words[4..<(words.count - 3)].joined(separator: " ")
            #expect(received == image.args, "iPXE would hand \(image.name) '\(received)' from: \(line)")
        }
    }

    // MARK: PXELINUX

    @Test func pxelinuxAppendSeparatesImagesWithDashes() throws {
        #expect(lines(PXELinuxConfig.render(try menu())) == [
            "# demo: renderer test",
            "# Generated by drops from profile demo; paths are relative to the tree root.",
            "SERIAL 0 115200",
            "DEFAULT drops",
            "PROMPT 0",
            "TIMEOUT 0",
            "LABEL drops",
            "  MENU LABEL demo: renderer test",
            "  KERNEL mboot.c32",
            "  APPEND bin/boot -serial --- bin/kern -nokdb -comport 1 --- bin/s0 --- bin/app say \"hi\" cost=$5",
            "",
        ])
    }

    // MARK: GRUB 2

    @Test func grub2RepeatsTheNameAndUsesServerPaths() throws {
        #expect(lines(Grub2Config.render(try menu())) == [
            "# demo: renderer test",
            "# Generated by drops from profile demo; paths are absolute on the TFTP server.",
            "serial --unit=0 --speed=115200",
            "terminal_input serial console",
            "terminal_output serial console",
            "set timeout=0",
            "set default=0",
            "menuentry 'demo: renderer test' {",
            "  multiboot /srv/tftp/demo/bin/boot boot -serial",
            "  module /srv/tftp/demo/bin/kern kern -nokdb -comport 1",
            "  module /srv/tftp/demo/bin/s0 s0",
            "  module /srv/tftp/demo/bin/app app say '\"hi\"' 'cost=$5'",
            "}",
            "",
        ])
    }

    @Test func grub2QuotesOnlyWordsWithSpecialCharacters() {
        #expect(Grub2Config.quote("plain-word=1,2") == "plain-word=1,2")
        #expect(Grub2Config.quote("$HOME") == "'$HOME'")
        #expect(Grub2Config.quote("\"q\"") == "'\"q\"'")
        #expect(Grub2Config.quote("it's") == "'it'\\''s'")
        #expect(Grub2Config.quote("a;b") == "'a;b'")
        #expect(Grub2Config.words("name  two   spaces") == "name two spaces")
    }

    /// GRUB 2's word splitting for what the renderer emits; nil when a special character stands unquoted.
    static func grubWords(_ line: String) -> [String]? {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quoted = false
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if quoted {
                if character == "'" { quoted = false } else { current.append(character) }
            } else if character == "'" {
                quoted = true
                inWord = true
            } else if character == "\\" {
                escaped = true
                inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else if "\"$;|&<>(){}#*?[]".contains(character) {
                return nil
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return quoted || escaped ? nil : words
    }

    @Test func grub2LinesGiveTheKernelTheLiteralWords() throws {
        var plan = try plan()
        plan.modules[0].args = "it's \"quoted\" $var a;b c&d <in> (x) {y} #hash back\\slash star* q? [r]"
        let menu = BootMenu(plan: plan)
        let config = lines(Grub2Config.render(menu))
        for image in [menu.firstStage] + menu.modules {
            let prefix = image == menu.firstStage ? "  multiboot " : "  module "
            let line = try #require(config.first { $0.hasPrefix(prefix + menu.serverPath(image.path) + " ") })
            let words = Self.grubWords(String(line.dropFirst(prefix.count)))
            #expect(words == [menu.serverPath(image.path)] + image.commandLine.split(separator: " ").map(String.init))
        }
    }

    // MARK: GRUB legacy

    @Test func grubLegacyUsesNetworkPathsAndModaddr() throws {
        #expect(lines(GrubLegacyMenu.render(try menu())) == [
            "# demo: renderer test",
            "# Generated by drops from profile demo.",
            "serial --unit=0 --speed=115200",
            "terminal --timeout=0 serial console",
            "default 0",
            "timeout 0",
            "",
            "title demo: renderer test",
            "kernel (nd)/srv/tftp/demo/bin/boot -serial",
            "module (nd)/srv/tftp/demo/bin/kern -nokdb -comport 1",
            "module (nd)/srv/tftp/demo/bin/s0",
            "modaddr 0x02000000",
            "module (nd)/srv/tftp/demo/bin/app say \"hi\" cost=$5",
            "",
        ])
    }

    // MARK: the TFTP prefix

    @Test func tftpPrefixDefaultsToTheProfileName() throws {
        let menu = try menu(prefix: nil)
        #expect(menu.tftpPrefix == "/demo")
        #expect(Grub2Config.render(menu).contains("\n  multiboot /demo/bin/boot boot -serial\n"))
        #expect(GrubLegacyMenu.render(menu).contains("\nkernel (nd)/demo/bin/boot -serial\n"))
    }

    @Test func tftpPrefixFromSetLosesItsTrailingSlashes() throws {
        let menu = try menu(variables: ["tftp_prefix": "/tftpboot/jork//"])
        #expect(menu.tftpPrefix == "/tftpboot/jork")
        #expect(menu.serverPath("bin/s0") == "/tftpboot/jork/bin/s0")
        #expect(Grub2Config.render(menu).contains("\n  module /tftpboot/jork/bin/s0 s0\n"))
        #expect(GrubLegacyMenu.render(menu).contains("\nmodule (nd)/tftpboot/jork/bin/s0\n"))
    }

    @Test func tftpPrefixAtTheServerRoot() throws {
        let menu = try menu(prefix: "/")
        #expect(menu.tftpPrefix == "")
        #expect(Grub2Config.render(menu).contains("\n  module /bin/s0 s0\n"))
        #expect(GrubLegacyMenu.render(menu).contains("\nmodule (nd)/bin/s0\n"))
    }

    @Test func relativeRenderersIgnoreThePrefix() throws {
        let a = try menu(prefix: "/one")
        let b = try menu(prefix: "/two/")
        #expect(IPXEScript.render(a) == IPXEScript.render(b))
        #expect(PXELinuxConfig.render(a) == PXELinuxConfig.render(b))
        #expect(Grub2Config.render(a) != Grub2Config.render(b))
    }

    // MARK: run-time files

    @Test func runtimeFilesAreInNoMenu() throws {
        let menu = try menu()
        #expect(!menu.modules.contains { $0.name == "late.cfg" })
        for text in [IPXEScript.render(menu), PXELinuxConfig.render(menu), Grub2Config.render(menu), GrubLegacyMenu.render(menu)] {
            #expect(!text.contains("late.cfg"))
            #expect(text.contains("bin/app"))
        }
    }
}
