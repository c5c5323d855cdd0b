// Package node is the Go API of doractl node programs.
//
// A node spawned by a daemon calls Init, which reads the daemon's address and the node's
// identity from the environment; a dynamic node (path: dynamic in the descriptor), started
// by hand, calls InitDynamic with its node id. Both return a *Node whose Events channel
// delivers inputs, input closings and the stop request, and whose Send publishes on the
// node's outputs:
//
//	n, err := node.Init(ctx)
//	if err != nil { ... }
//	defer n.Close()
//	for ev := range n.Events() {
//		switch ev.Type {
//		case node.EventInput:
//			_ = n.Send("out", ev.Data)
//		case node.EventStop:
//			return
//		}
//	}
//
// The Events channel closes when the link to the daemon closes; the node should then exit.
package node
