#include "cluster_read.h"

#include "reconciler.h"

namespace kuberelay::op {

ClusterRead readPolicyObjects(KubeApi& api, const std::vector<std::string>& namespaces) {
  ClusterRead out;
  std::vector<std::string> scopes = namespaces;
  if (scopes.empty()) scopes.push_back("");
  for (const ResourceType* type : {&resources::kReceiveConnectors, &resources::kSenderPermissions,
                                   &resources::kAcceptedDomains}) {
    for (const auto& ns : scopes) {
      ListOptions options;
      options.limit = 500;
      do {
        ListResult page = api.list(type->collectionPath(ns), options);
        if (!page.result.ok()) {
          out.error = "list " + type->collectionPath(ns) + ": " + page.result.describe();
          return out;
        }
        for (const auto& item : page.items) {
          Json object = item;
          // List items carry no kind/apiVersion; the decoder needs them.
          object["kind"] = type->kind;
          object["apiVersion"] = type->apiVersion();
          decodeObject(object, out.set);
          ++out.objects;
        }
        options.continueToken = page.continueToken;
      } while (!options.continueToken.empty());
    }
  }
  for (const auto& key : referencedSecrets(out.set)) {
    size_t slash = key.find('/');
    const std::string path =
        resources::kSecrets.objectPath(key.substr(0, slash), key.substr(slash + 1));
    ApiResult got = api.get(path);
    if (got.notFound()) continue;
    if (!got.ok()) {
      out.error = "get " + path + ": " + got.describe();
      return out;
    }
    Json object = got.body;
    object["kind"] = "Secret";
    object["apiVersion"] = "v1";
    decodeObject(object, out.set);
    ++out.secrets;
  }
  return out;
}

}  // namespace kuberelay::op
