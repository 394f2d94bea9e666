import Dispatch
import Foundation
import NIOConcurrencyHelpers

/// Catches SIGINT and SIGTERM for a run that made things it must remove (the private lab
/// network): the signal ends the run instead of the process, and the normal teardown runs.
/// Unchecked: `sources` is written once, in init, and only kept alive after that.
final class Interruption: @unchecked Sendable {
    private struct State {
        var received: String?
        var handler: (@Sendable (String) -> Void)?
    }
    private let state = NIOLockedValueBox(State())
    private var sources: [DispatchSourceSignal] = []

    init() {
        var made: [DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [state] in
                let handler = state.withLockedValue { value -> (@Sendable (String) -> Void)? in
                    if value.received == nil { value.received = name }
                    return value.handler
                }
                handler?(name)
            }
            source.resume()
            made.append(source)
        }
        sources = made
    }

    /// The signal that came, if one did.
    var received: String? { state.withLockedValue { $0.received } }

    /// Calls `handler` on the next signal, or at once when one came already.
    func onSignal(_ handler: @escaping @Sendable (String) -> Void) {
        let already = state.withLockedValue { value -> String? in
            value.handler = handler
            return value.received
        }
        if let already { handler(already) }
    }
}
