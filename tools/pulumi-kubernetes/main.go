// The pulumi-kubernetes provider plugin, built from the pinned provider module. Upstream's own main package
// embeds a versioned schema and mapping that its release build generates and the module does not ship, so this
// package embeds copies that tools/build-kubernetes.sh generates beside it (never committed).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var schema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, schema, terraformMapping)
}
