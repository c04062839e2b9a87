// NAME
//   kuberelay-policy - compile, check and try out KubeRelay policy manifests without a relay
// SYNOPSIS
//   kuberelay-policy check DIR...        compile; print errors and analyzer warnings
//   kuberelay-policy print DIR           the compiled snapshot (secrets redacted) and listeners
//   kuberelay-policy script [--trace] DIR FILE
//                                        run a policy script (see below) against DIR's policy
//   kuberelay-policy explain (DIR | --cluster [--kubeconfig FILE] [--context NAME]
//                    [--namespace NS]...) --from IP --to-port PORT [--to-address IP] [--tls]
//                    [--auth USER[:PASSWORD]] [--mail ADDR] [--size N] [--rcpt ADDR]...
//                    [--data BYTES] [--json]
//                                        the decision at each stage of one hypothetical session,
//                                        with the rules and objects that produced it; --cluster
//                                        reads the objects from the API server (kubeconfig as
//                                        the operator resolves it)
// SCRIPT
//   One command a line; '#' starts a comment. Each command prints "> command" and the policy's
//   reply "< code enhanced text [reason]":
//     connect CLIENT -> [LOCAL:]PORT     select a connector (LOCAL defaults to any address)
//     ehlo                               what the connector advertises
//     starttls                           may the client start TLS (then TLS is on)
//     auth USER PASSWORD                 AUTH PLAIN (password checked with crypt(3))
//     mail <ADDR> [SIZE]                 MAIL FROM
//     rcpt <ADDR>                        RCPT TO (counts accepted recipients)
//     data BYTES                         message size at end of data
//     rset                               new transaction
// EXIT STATUS
//   check: 0 when there are no errors (warnings allowed), 1 otherwise. script: 0.
//   explain: 0 when every stage is allowed, 1 when the session is refused, 2 on bad usage
//   (so a CI job can assert what a policy change allows).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "kuberelay/policy/compiler.h"
#include "kuberelay/policy/credentials.h"
#include "kuberelay/policy/engine.h"
#include "kuberelay/policy/explain.h"
#include "kuberelay/policy/manifest.h"

#ifdef KUBERELAY_WITH_CLUSTER
#include "cluster_read.h"
#include "kube/cpprest_kube_api.h"
#include "kube/kubeconfig.h"
#endif

using namespace kuberelay::policy;

namespace {

int usage() {
  std::cerr
      << "usage: kuberelay-policy check DIR... | print DIR | script [--trace] DIR FILE\n"
         "       kuberelay-policy explain (DIR | --cluster [--kubeconfig FILE] [--context NAME]\n"
         "           [--namespace NS]...) --from IP --to-port PORT [--to-address IP]\n"
         "           [--tls] [--auth USER[:PASSWORD]] [--mail ADDR] [--size N]\n"
         "           [--rcpt ADDR]... [--data BYTES] [--json]\n";
  return 2;
}

CompileResult compileDirs(const std::vector<std::string>& dirs);

struct ClusterSource {
  bool enabled = false;
  std::string kubeconfig, context;
  std::vector<std::string> namespaces;
};

// The cluster's objects, compiled as the operator compiles them. nullopt (with a message on
// stderr) when the API server cannot be read.
std::optional<CompileResult> compileCluster(const ClusterSource& source) {
#ifdef KUBERELAY_WITH_CLUSTER
  try {
    auto api = kuberelay::op::makeCpprestKubeApi(
        kuberelay::op::resolveClusterConfig(source.kubeconfig, source.context),
        {.userAgent = "kuberelay-policy"});
    kuberelay::op::ClusterRead read = kuberelay::op::readPolicyObjects(*api, source.namespaces);
    if (!read.error.empty()) {
      std::cerr << "cannot read the cluster: " << read.error << "\n";
      return std::nullopt;
    }
    return compile(read.set);
  } catch (const std::exception& e) {
    std::cerr << "cannot read the cluster: " << e.what() << "\n";
    return std::nullopt;
  }
#else
  (void)source;
  std::cerr << "this kuberelay-policy was built without the operator's Kubernetes client\n";
  return std::nullopt;
#endif
}

int explain(std::vector<std::string> args) {
  if (args.empty()) return usage();
  ClusterSource cluster;
  std::string dir;
  size_t first = 0;
  if (args[0].rfind("--", 0) != 0) dir = args[first++];
  std::string from, toAddress = "0.0.0.0", auth, mail;
  int port = -1;
  bool tls = false, json = false;
  std::optional<uint64_t> size, data;
  std::vector<std::string> rcpts;
  for (size_t i = first; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    std::optional<std::string> v;
    if (a == "--tls") {
      tls = true;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--cluster") {
      cluster.enabled = true;
    } else if ((a == "--kubeconfig" || a == "--context" || a == "--namespace") && (v = value())) {
      cluster.enabled = true;
      if (a == "--kubeconfig") cluster.kubeconfig = *v;
      if (a == "--context") cluster.context = *v;
      if (a == "--namespace") cluster.namespaces.push_back(*v);
    } else if ((a == "--from" || a == "--to-port" || a == "--to-address" || a == "--auth" ||
                a == "--mail" || a == "--size" || a == "--rcpt" || a == "--data") &&
               (v = value())) {
      try {
        if (a == "--from") from = *v;
        if (a == "--to-port") port = std::stoi(*v);
        if (a == "--to-address") toAddress = *v;
        if (a == "--auth") auth = *v;
        if (a == "--mail") mail = *v;
        if (a == "--size") size = std::stoull(*v);
        if (a == "--rcpt") rcpts.push_back(*v);
        if (a == "--data") data = std::stoull(*v);
      } catch (const std::exception&) {
        std::cerr << "explain: bad value for " << a << ": " << *v << "\n";
        return 2;
      }
    } else {
      std::cerr << "explain: unknown or incomplete option " << a << "\n";
      return usage();
    }
  }
  auto remote = IpAddress::parse(from);
  auto local = IpAddress::parse(toAddress);
  if (!remote || !local || port < 1 || port > 65535) {
    std::cerr << "explain: --from IP and --to-port PORT are required\n";
    return 2;
  }
  if (cluster.enabled == !dir.empty()) {
    std::cerr << "explain: give either a manifest DIR or --cluster\n";
    return 2;
  }
  std::optional<CompileResult> compiled =
      cluster.enabled ? compileCluster(cluster) : compileDirs({dir});
  if (!compiled) return 2;
  CompileResult& result = *compiled;
  ExplainRequest request;
  request.from = *remote;
  request.toAddress = *local;
  request.toPort = static_cast<uint16_t>(port);
  request.tls = tls;
  if (!auth.empty()) {
    size_t colon = auth.find(':');
    request.user = auth.substr(0, colon);
    if (colon != std::string::npos) request.password = auth.substr(colon + 1);
  }
  if (!mail.empty()) request.mail = mail;
  request.size = size;
  request.rcpts = rcpts;
  request.dataBytes = data;
  ExplainResult explained = explainSession(result.snapshot, request);
  std::cout << (json ? explained.toJson() : explained.toText());
  const bool allowed = explained.allowed;
  return allowed ? 0 : 1;
}

CompileResult compileDirs(const std::vector<std::string>& dirs) {
  ResourceSet all;
  for (const auto& dir : dirs) {
    ResourceSet r = loadManifestDirectory(dir);
    auto move = [](auto& from, auto& to) {
      to.insert(to.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
    };
    move(r.connectors, all.connectors);
    move(r.permissions, all.permissions);
    move(r.domains, all.domains);
    move(r.secrets, all.secrets);
    move(r.diagnostics, all.diagnostics);
  }
  return compile(all);
}

void printDiagnostics(const CompileResult& result) {
  for (const auto& d : result.diagnostics) {
    std::cout << (d.isError() ? "error: " : "warning: ") << d.toString();
    if (!d.isError()) std::cout << " [" << d.reason << "]";
    std::cout << "\n";
  }
}

int check(const std::vector<std::string>& dirs) {
  CompileResult result = compileDirs(dirs);
  printDiagnostics(result);
  std::cout << "policy " << result.snapshot->version() << ": "
            << result.snapshot->connectors().size() << " connectors, " << result.errorCount()
            << " errors, " << result.warningCount() << " warnings\n";
  return result.errorCount() == 0 ? 0 : 1;
}

int print(const std::string& dir) {
  CompileResult result = compileDirs({dir});
  printDiagnostics(result);
  std::cout << "version " << result.snapshot->version() << "\n";
  for (const auto& l : result.snapshot->listeners()) {
    std::cout << "listener " << l.binding.toString() << (l.implicitTls ? " implicit-tls" : "")
              << "\n";
  }
  std::cout << result.snapshot->render();
  return 0;
}

void printDecision(const Decision& d) {
  std::cout << "< " << d.reply.toString() << " [" << d.reason << "]\n";
}

int script(const std::string& dir, const std::string& file, bool withTrace) {
  CompileResult result = compileDirs({dir});
  for (const auto& d : result.diagnostics) {
    if (d.isError()) std::cout << "# error: " << d.toString() << "\n";
  }
  std::ifstream in(file);
  if (!in) {
    std::cerr << "cannot read " << file << "\n";
    return 2;
  }
  std::optional<SessionPolicy> session;
  uint32_t recipients = 0;
  std::string line;
  Trace trace;
  Trace* tracePtr = withTrace ? &trace : nullptr;
  auto flushTrace = [&] {
    for (const auto& step : trace.steps) {
      std::cout << "  trace " << toString(step.stage) << " " << step.rule << ": " << step.detail
                << "\n";
    }
    trace.steps.clear();
  };
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      std::cout << line << "\n";
      continue;
    }
    std::istringstream words(line);
    std::string cmd;
    words >> cmd;
    std::cout << "> " << line << "\n";
    if (cmd == "connect") {
      std::string client, arrow, local;
      words >> client >> arrow >> local;
      auto remote = IpAddress::parse(client);
      size_t colon = local.rfind(':');
      std::string localHost = colon == std::string::npos ? "0.0.0.0" : local.substr(0, colon);
      if (!localHost.empty() && localHost.front() == '[')
        localHost = localHost.substr(1, localHost.size() - 2);
      auto localAddr = IpAddress::parse(localHost);
      int port = std::stoi(colon == std::string::npos ? local : local.substr(colon + 1));
      if (!remote || !localAddr || arrow != "->") {
        std::cout << "! bad connect line\n";
        continue;
      }
      session = SessionPolicy::connect(
          result.snapshot, {*localAddr, static_cast<uint16_t>(port), *remote}, tracePtr);
      recipients = 0;
      const Decision& d = session->connectDecision();
      std::cout << "< " << d.reply.toString() << " [" << d.reason << "]";
      if (session->connector()) std::cout << " connector=" << session->connector()->id;
      std::cout << "\n";
    } else if (!session) {
      std::cout << "! no session: connect first\n";
      continue;
    } else if (cmd == "ehlo") {
      Advertisement a = session->ehlo();
      std::cout << "< 250";
      if (a.startTls) std::cout << " STARTTLS";
      if (a.auth) std::cout << " AUTH=PLAIN,LOGIN";
      // SIZE with no number: this client may exceed maxMessageSize (Bypass-Message-Size-Limit).
      if (a.sizeLimit == 0) {
        std::cout << " SIZE\n";
      } else {
        std::cout << " SIZE=" << a.sizeLimit << "\n";
      }
    } else if (cmd == "starttls") {
      Decision d = session->startTls(tracePtr);
      printDecision(d);
      if (d.allowed) session->tlsEstablished();
    } else if (cmd == "auth") {
      std::string user, password;
      words >> user >> password;
      Decision start = session->authStart("PLAIN", tracePtr);
      if (!start.allowed) {
        printDecision(start);
      } else {
        const UserEntry* entry = session->connector()
                                     ? verifyCredentials(*session->connector(), user, password)
                                     : nullptr;
        printDecision(session->authenticated(entry, tracePtr));
      }
    } else if (cmd == "mail") {
      std::string addr, size;
      words >> addr >> size;
      std::optional<uint64_t> declared;
      if (!size.empty()) declared = std::stoull(size);
      recipients = 0;
      printDecision(session->mailFrom(MailAddress::split(addr), declared, tracePtr));
    } else if (cmd == "rcpt") {
      std::string addr;
      words >> addr;
      Decision d = session->rcptTo(MailAddress::split(addr), recipients, tracePtr);
      if (d.allowed) ++recipients;
      printDecision(d);
    } else if (cmd == "data") {
      uint64_t bytes = 0;
      words >> bytes;
      printDecision(session->messageSize(bytes, tracePtr));
    } else if (cmd == "rset") {
      recipients = 0;
      std::cout << "< 250 2.0.0 Resetting\n";
    } else {
      std::cout << "! unknown command\n";
    }
    flushTrace();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "check" && !args.empty()) return check(args);
  if (cmd == "print" && args.size() == 1) return print(args[0]);
  if (cmd == "explain") return explain(args);
  if (cmd == "script") {
    bool trace = !args.empty() && args[0] == "--trace";
    if (trace) args.erase(args.begin());
    if (args.size() == 2) return script(args[0], args[1], trace);
  }
  return usage();
}
