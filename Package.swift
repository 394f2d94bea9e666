// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "drops",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "drops-build", targets: ["drops-build"]),
        .executable(name: "drops-serve", targets: ["drops-serve"]),
        .executable(name: "drops-run", targets: ["drops-run"]),
        .executable(name: "drops-bench", targets: ["drops-bench"]),
        .library(name: "DropsModel", targets: ["DropsModel"]),
        .library(name: "DropsImage", targets: ["DropsImage"]),
        .library(name: "DropsQEMU", targets: ["DropsQEMU"]),
        .library(name: "DropsArchive", targets: ["DropsArchive"]),
        .library(name: "DropsFetch", targets: ["DropsFetch"]),
        .library(name: "DropsLab", targets: ["DropsLab"]),
        .library(name: "DropsRunner", targets: ["DropsRunner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Value types, profile decoding and validation: no sockets, no processes.
        .target(
            name: "DropsModel",
            dependencies: [.product(name: "TOMLKit", package: "TOMLKit")]
        ),
        // Component inspection, boot-menu renderers and the atomic image-tree builder.
        .target(
            name: "DropsImage",
            dependencies: [
                "DropsModel", "DropsArchive",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libarchive (Debian's libarchive-dev), through a module map over its headers.
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        // RAM disks from a root folder and a device table, written and read with libarchive.
        .target(name: "DropsArchive", dependencies: ["CArchive"]),
        // libcurl (Debian's libcurl4-openssl-dev), with typed wrappers for its variadic calls.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Components from archives (libarchive) and pinned URLs (libcurl) through a content-addressed cache.
        .target(
            name: "DropsFetch",
            dependencies: [
                "DropsModel", "DropsArchive", "DropsImage", "CCurl",
            ]
        ),
        // sendmmsg for a window of DATA packets (Glibc's Swift module does not export mmsghdr).
        .target(name: "CDatagrams"),
        // The TFTP server: pure packet codec and transfer state machines, SwiftNIO sockets.
        .target(
            name: "DropsTFTP",
            dependencies: [
                "CDatagrams",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP file server: the served tree over HTTP/1.1 (NIOHTTP1), TFTP's path rules.
        .target(
            name: "DropsHTTP",
            dependencies: [
                "DropsModel", "DropsTFTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // proxyDHCP/PXE: the DHCP codec and boot decisions (pure), the server (SwiftNIO).
        .target(
            name: "DropsPXE",
            dependencies: [
                "DropsModel", "DropsImage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Finding the programs drops starts, and stopping them.
        .target(name: "DropsProcess"),
        // QEMU command lines, the private lab network, the probe-report reader.
        .target(name: "DropsQEMU", dependencies: ["DropsModel", "DropsProcess"]),
        // One boot of a tree on a target (a QEMU guest, a lab PC), start to verdict: the
        // console watch, the verdict, the reports.
        .target(
            name: "DropsRunner",
            dependencies: [
                "DropsModel", "DropsImage", "DropsQEMU", "DropsLab", "DropsTFTP", "DropsPXE", "DropsProcess", "DropsHTTP",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What the three commands share: exit codes, error lines, logging to stderr, JSON.
        .target(
            name: "DropsCLI",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "drops-build",
            dependencies: [
                "DropsModel", "DropsImage", "DropsCLI", "DropsArchive", "DropsFetch",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "drops-serve",
            dependencies: [
                "DropsCLI", "DropsTFTP", "DropsPXE", "DropsLab", "DropsHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "drops-run",
            dependencies: [
                "DropsModel", "DropsImage", "DropsQEMU", "DropsCLI", "DropsLab", "DropsRunner",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Synthetic binaries and temporary folders shared by the test targets.
        .target(name: "DropsTestSupport", dependencies: ["DropsModel", "DropsQEMU", "DropsLab"], path: "Tests/DropsTestSupport"),
        // Lab PCs: power (IPMI through ipmitool, Wake-on-LAN, command hooks).
        .target(name: "DropsLab", dependencies: ["DropsModel", "DropsProcess", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        .testTarget(name: "DropsLabTests", dependencies: ["DropsLab", "DropsModel", "DropsTestSupport",
                                                         .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        // The benchmark behind `make bench`: drops-serve beside tftpd-hpa and dnsmasq.
        .executableTarget(name: "drops-bench", dependencies: ["DropsTestSupport", "DropsModel"]),
        .testTarget(name: "DropsModelTests", dependencies: ["DropsModel", "DropsTestSupport"]),
        .testTarget(
            name: "DropsFetchTests",
            dependencies: ["DropsFetch", "DropsModel", "DropsArchive", "DropsImage", "DropsTFTP", "DropsTestSupport",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(name: "DropsArchiveTests", dependencies: ["DropsArchive", "DropsTestSupport"]),
        .testTarget(name: "DropsImageTests", dependencies: ["DropsImage", "DropsModel", "DropsTestSupport"]),
        .testTarget(name: "DropsQEMUTests", dependencies: ["DropsQEMU", "DropsModel"]),
        .testTarget(name: "DropsRunnerTests", dependencies: ["DropsRunner", "DropsQEMU", "DropsModel"]),
        .testTarget(name: "DropsTFTPTests", dependencies: ["DropsTFTP", "DropsTestSupport"]),
        .testTarget(name: "DropsHTTPTests", dependencies: ["DropsHTTP", "DropsTFTP", "DropsTestSupport",
                                                          .product(name: "Crypto", package: "swift-crypto"),
                                                          .product(name: "Logging", package: "swift-log"),
                                                          .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "DropsPXETests", dependencies: ["DropsPXE", "DropsModel", "DropsTestSupport"]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "DropsImage", "DropsModel", "DropsQEMU", "DropsTFTP", "DropsArchive", "DropsTestSupport", "DropsLab",
                "DropsRunner", "DropsProcess", "DropsPXE",
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
