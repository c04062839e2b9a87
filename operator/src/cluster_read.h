// NAME
//   cluster_read.h - the policy objects of a cluster, read once (for `kuberelay-policy --cluster`)
// DESCRIPTION
//   Lists ReceiveConnectors, SenderPermissions and AcceptedDomains (paginated, in the given
//   namespaces or across all), then GETs the Secrets the connectors reference, and decodes
//   everything exactly as the reconciler does (decodeObject), so a snapshot compiled from it is
//   the one the operator computes for the same objects. A Secret that does not exist is left
//   out (the compiler reports it, as it would in the operator); any other API error fails.
#pragma once

#include <string>
#include <vector>

#include "kuberelay/operator/kube_api.h"
#include "kuberelay/policy/manifest.h"

namespace kuberelay::op {

struct ClusterRead {
  policy::ResourceSet set;
  std::string error;  // non-empty: the read failed (the set is incomplete)
  size_t objects = 0;
  size_t secrets = 0;
};

// namespaces: empty (or {""}) = all namespaces.
ClusterRead readPolicyObjects(KubeApi& api, const std::vector<std::string>& namespaces);

}  // namespace kuberelay::op
