import ArgumentParser
import Foundation
import NodeRuntime
import Topology

struct DRBringOnline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bring-online", abstract: "Resume shipping to SITE; anti-entropy catches it up.")

    @Option(help: "The topology file.") var topology: String
    @Argument(help: "The site to bring back online.") var site: String

    func run() async throws {
        try await setOffline(site, offline: false, topology: try loadTopology(topology))
    }
}
