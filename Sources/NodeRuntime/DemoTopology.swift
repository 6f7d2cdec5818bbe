/// The federation `sessionfed demo` runs: `topologies/local-demo.yaml`, embedded so the demo
/// works from any directory (a test keeps the two identical).
public enum DemoTopology {
    public static let localDemo = """
        # Three sites on one machine, one node each, linked by mutual TLS: what `sessionfed demo`
        # runs (it embeds this file and creates the certificates in a temporary directory).
        # To run the nodes yourself:
        #   sessionfed certs init --topology topologies/local-demo.yaml --out topologies/certs
        #   sessionfed node --topology topologies/local-demo.yaml --node seoul-1   # and tokyo-1, frankfurt-1
        federation: demo-sessions
        topologyVersion: 1
        defaults:
          partitions: 16
          backupCount: 0
          conflictPolicy: lww
          deletePolicy: delete-wins
          batchIntervalMilliseconds: 5
        links: mesh
        tls:
          ca: certs/ca.pem
          directory: certs
        sites:
          - name: seoul
            id: 1
            role: active
            nodes:
              - name: seoul-1
                client: 127.0.0.1:16379
                peer: 127.0.0.1:17379
                federation: 127.0.0.1:18379
                admin: 127.0.0.1:19379
          - name: tokyo
            id: 2
            role: active
            nodes:
              - name: tokyo-1
                client: 127.0.0.1:16380
                peer: 127.0.0.1:17380
                federation: 127.0.0.1:18380
                admin: 127.0.0.1:19380
          - name: frankfurt
            id: 3
            role: active
            nodes:
              - name: frankfurt-1
                client: 127.0.0.1:16381
                peer: 127.0.0.1:17381
                federation: 127.0.0.1:18381
                admin: 127.0.0.1:19381
        """
}
