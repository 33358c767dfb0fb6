#include "app/catalog_cli.h"

#include <cstdio>
#include <iostream>

#include "catalog/catalog.h"

namespace caas::app {
namespace {

Result<catalog::Catalog> LoadCatalog(const std::string& file) {
  if (file.empty()) return catalog::Catalog::Default();
  return catalog::Catalog::Load(file);
}

std::string Count(const std::optional<Decimal>& v) { return v ? v->ToString() : "-"; }

}  // namespace

int RunPlansList(const std::string& file) {
  auto c = LoadCatalog(file);
  if (!c) {
    std::cerr << "caas-billing: " << c.error().field << ": " << c.error().message << "\n";
    return 2;
  }
  std::printf("%-12s %-8s %-12s %-14s %-6s %s\n", "plan", "version", "name", "base fee/month",
              "trial", "");
  for (const auto& p : c->All()) {
    const bool latest = c->Latest(p.id) == &p;
    std::printf(
        "%-12s %-8d %-12s %-14s %-6s %s\n", p.id.c_str(), p.version, p.name.c_str(),
        p.custom ? "custom"
                 : (p.base_fee.ToDecimalString() + " " + std::string(c->currency().code)).c_str(),
        p.trial_days ? (std::to_string(p.trial_days) + "d").c_str() : "-",
        latest ? "(latest)" : "");
  }
  return 0;
}

int RunPlansShow(const std::string& file, const std::string& plan, int version) {
  auto c = LoadCatalog(file);
  if (!c) {
    std::cerr << "caas-billing: " << c.error().field << ": " << c.error().message << "\n";
    return 2;
  }
  const catalog::PlanVersion* p = version > 0 ? c->Get(plan, version) : c->Latest(plan);
  if (!p) {
    std::cerr << "caas-billing: no plan " << plan
              << (version > 0 ? " version " + std::to_string(version) : "") << "\n";
    return 2;
  }
  std::cout << p->name << " (" << p->id << " version " << p->version << ", tier " << p->tier
            << ")\n";
  std::cout << "  base fee   "
            << (p->custom ? "custom per tenant"
                          : p->base_fee.ToDecimalString() + " " + std::string(c->currency().code) +
                                " per month")
            << "\n";
  std::cout << "  trial      " << (p->trial_days ? std::to_string(p->trial_days) + " days" : "none")
            << "\n";
  std::printf("  %-10s %12s %12s %14s\n", "metric", "included", "limit", "unit price");
  for (const auto& [m, mp] : p->metrics) {
    std::printf("  %-10s %12s %12s %14s\n", std::string(catalog::MetricName(m)).c_str(),
                Count(mp.included).c_str(), Count(mp.limit).c_str(),
                mp.unit_price ? mp.unit_price->ToString().c_str() : "-");
  }
  std::cout << "  features  ";
  for (const auto& [f, on] : p->features) std::cout << " " << f << "=" << (on ? "on" : "off");
  std::cout << "\n";
  return 0;
}

}  // namespace caas::app
