// Lattice pruning and word-level determinisation for pykd's builtin decoder (a C ABI loaded with
// ctypes by pykd/decode/latdet.py; built by that module with the system C++ compiler).
//
// Written for pykd from the algorithm descriptions (pruning by forward-backward best costs;
// determinisation of an acyclic lattice by subset construction over words in Kaldi's
// CompactLattice semiring: per word sequence the best path, transition-ids as arc strings
// pushed as early as they are common to all paths); it is a port of pykd's own Python version
// (tests/lattice_reference.py), which the tests compare it with. No Kaldi code.
//
// Input: a state-level Kaldi lattice ("lattice4") in OpenFst's binary VectorFst form, as
// kaldifst.Lattice.write() produces. Output: a CompactLattice read out through the export
// functions. Weights are float32 in the files and summed in double here.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <queue>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kBeamDelta = 0.5;  // Kaldi's decoders' default beam_delta
const double kDelta = 1.0 / 1024;  // weight quantisation when comparing determinised states

struct Arc {
  int dst, tid, word;
  double g, a;
};

struct Lat {
  int start = 0;
  std::vector<std::vector<Arc>> arcs;
  std::vector<char> is_final;
  std::vector<double> fg, fa;
  int num_states() const { return static_cast<int>(arcs.size()); }
};

struct Elem {
  double g = 0, a = 0;
  std::vector<int> t;
};

// Kaldi's CompactLatticeWeight order: lower graph+acoustic wins; ties by graph, then string.
bool Better(const Elem &x, const Elem &y) {
  double sx = x.g + x.a, sy = y.g + y.a;
  if (sx != sy) return sx < sy;
  if (x.g != y.g) return x.g < y.g;
  return x.t < y.t;
}

struct CArc {
  int dst, word;
  double g, a;
  std::vector<int> t;
};

struct CLat {
  int start = 0;
  std::vector<std::vector<CArc>> arcs;
  std::map<int, Elem> finals;
  int num_states() const { return static_cast<int>(arcs.size()); }
};

// ---------------------------------------------------------------------------- parsing

struct Reader {
  const char *p, *end;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (end - p < static_cast<long>(sizeof(T))) {
      ok = false;
      return v;
    }
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  std::string str() {
    int32_t n = get<int32_t>();
    if (!ok || n < 0 || end - p < n) {
      ok = false;
      return "";
    }
    std::string s(p, p + n);
    p += n;
    return s;
  }
};

const int32_t kFstMagic = 2125659606;

// ---------------------------------------------------------------------------- topological order

// States reachable from start in topological order (DFS for reachability, then Kahn's
// algorithm with a stack), as the Python reference orders them. Empty on a cycle.
template <typename ArcT>
std::vector<int> TopoOrder(const std::vector<std::vector<ArcT>> &arcs, int start, bool *cyclic) {
  int n = static_cast<int>(arcs.size());
  std::vector<char> seen(n, 0);
  std::vector<int> stack{start}, reach;
  seen[start] = 1;
  while (!stack.empty()) {
    int s = stack.back();
    stack.pop_back();
    reach.push_back(s);
    for (const auto &arc : arcs[s])
      if (!seen[arc.dst]) {
        seen[arc.dst] = 1;
        stack.push_back(arc.dst);
      }
  }
  std::vector<int> indeg(n, 0);
  for (int s : reach)
    for (const auto &arc : arcs[s]) indeg[arc.dst]++;
  std::vector<int> queue, order;
  for (int s : reach)
    if (indeg[s] == 0) queue.push_back(s);
  while (!queue.empty()) {
    int s = queue.back();
    queue.pop_back();
    order.push_back(s);
    for (const auto &arc : arcs[s])
      if (--indeg[arc.dst] == 0) queue.push_back(arc.dst);
  }
  *cyclic = order.size() != reach.size();
  return order;
}

// ---------------------------------------------------------------------------- pruning

// Forward (alpha) and backward (beta) best costs; arc cost = g + a, final cost = g + a.
template <typename L, typename ArcCost, typename FinalOf>
void AlphaBeta(const L &lat, const std::vector<int> &order, ArcCost arc_cost, FinalOf final_of,
               std::vector<double> *alpha, std::vector<double> *beta) {
  int n = lat.num_states();
  alpha->assign(n, kInf);
  beta->assign(n, kInf);
  (*alpha)[lat.start] = 0.0;
  for (int s : order) {
    if ((*alpha)[s] == kInf) continue;
    for (const auto &arc : lat.arcs[s]) {
      double c = (*alpha)[s] + arc_cost(arc);
      if (c < (*alpha)[arc.dst]) (*alpha)[arc.dst] = c;
    }
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    int s = *it;
    double fg, fa;
    double b = final_of(s, &fg, &fa) ? fg + fa : kInf;
    for (const auto &arc : lat.arcs[s]) b = std::min(b, arc_cost(arc) + (*beta)[arc.dst]);
    (*beta)[s] = b;
  }
}

// Final weights of the two lattice types, for the generic pruning below.
bool FinalOf(const Lat &lat, int s, double *g, double *a) {
  if (!lat.is_final[s]) return false;
  *g = lat.fg[s];
  *a = lat.fa[s];
  return true;
}
bool FinalOf(const CLat &lat, int s, double *g, double *a) {
  auto it = lat.finals.find(s);
  if (it == lat.finals.end()) return false;
  *g = it->second.g;
  *a = it->second.a;
  return true;
}
void ResizeStates(Lat *lat, int m) {
  lat->arcs.assign(m, {});
  lat->is_final.assign(m, 0);
  lat->fg.assign(m, kInf);
  lat->fa.assign(m, kInf);
}
void ResizeStates(CLat *lat, int m) { lat->arcs.assign(m, {}); }
void CopyFinal(const Lat &from, int s, Lat *to, int t) {
  to->is_final[t] = 1;
  to->fg[t] = from.fg[s];
  to->fa[t] = from.fa[s];
}
void CopyFinal(const CLat &from, int s, CLat *to, int t) { to->finals[t] = from.finals.at(s); }

// Keep arcs and finals on a path within `beam` of the best (cost g + a); states renumbered in
// topological order (start 0). Returns false on a cycle.
template <typename L>
bool Prune(const L &lat, double beam, L *out) {
  *out = L();
  int n = lat.num_states();
  if (n == 0) return true;
  bool cyclic;
  std::vector<int> order = TopoOrder(lat.arcs, lat.start, &cyclic);
  if (cyclic) return false;
  auto cost = [](const auto &a) { return a.g + a.a; };
  auto fin = [&lat](int s, double *g, double *a) { return FinalOf(lat, s, g, a); };
  std::vector<double> alpha, beta;
  AlphaBeta(lat, order, cost, fin, &alpha, &beta);
  double best = beta[lat.start];
  if (best == kInf) return true;
  double limit = best + beam;
  std::vector<int> new_id(n, -1);
  int m = 0;
  for (int s : order)
    if (alpha[s] + beta[s] <= limit) new_id[s] = m++;
  out->start = 0;
  ResizeStates(out, m);
  for (int s : order) {
    int ns = new_id[s];
    if (ns < 0) continue;
    for (const auto &arc : lat.arcs[s]) {
      int d = arc.dst;
      if (new_id[d] >= 0 && alpha[s] + cost(arc) + beta[d] <= limit) {
        auto c = arc;
        c.dst = new_id[d];
        out->arcs[ns].push_back(c);
      }
    }
    double fg, fa;
    if (FinalOf(lat, s, &fg, &fa) && alpha[s] + fg + fa <= limit) CopyFinal(lat, s, out, ns);
  }
  return true;
}

// ---------------------------------------------------------------------------- determinisation

using Subset = std::map<int, Elem>;
using Key = std::vector<std::tuple<int, int64_t, int64_t, std::vector<int>>>;

struct LimitExceeded {};

class Determinizer {
 public:
  // Paths of the result cost at most best + beam (+ a small slack); the caller prunes it at
  // `beam` again, so the slack only keeps a few arcs that pruning removes.
  Determinizer(const Lat &lat, double beam, int64_t max_work)
      : lat_(lat), beam_(beam), max_work_(max_work) {}

  // Returns false on a cycle; throws LimitExceeded past max_work closure steps.
  //
  // Pruned determinisation: det-states are expanded best-first by the cost of the best complete
  // path through them (forward cost of the det-state + the best completion of its elements,
  // exact from the input's backward costs), and none whose best path lies outside the beam is
  // made. The part of the result within the beam is the full determinisation's: after pruning
  // both are the same lattice.
  bool Run(CLat *out) {
    *out = CLat();
    int n = lat_.num_states();
    if (n == 0) return true;
    bool cyclic;
    std::vector<int> order = TopoOrder(lat_.arcs, lat_.start, &cyclic);
    if (cyclic) return false;
    rank_.assign(n, 0);
    for (size_t i = 0; i < order.size(); ++i) rank_[order[i]] = static_cast<int>(i);
    is_output_.assign(n, 0);
    done_in_.assign(n, -1);
    for (int s = 0; s < n; ++s) {
      bool word_arc = false;
      for (const Arc &a : lat_.arcs[s]) word_arc = word_arc || a.word != 0;
      is_output_[s] = word_arc || lat_.is_final[s];
    }
    beta_.assign(n, kInf);
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      int s = *it;
      double b = lat_.is_final[s] ? lat_.fg[s] + lat_.fa[s] : kInf;
      for (const Arc &arc : lat_.arcs[s]) b = std::min(b, (arc.g + arc.a) + beta_[arc.dst]);
      beta_[s] = b;
    }
    if (beta_[lat_.start] == kInf) return true;
    double cutoff = beta_[lat_.start] + beam_;
    cutoff += 1e-3 + 1e-6 * std::fabs(cutoff);

    Subset start;
    start[lat_.start] = Elem();
    Closure(&start);
    Subset start_out = OutputsOf(start);
    out->start = 0;
    out->arcs.emplace_back();
    std::map<Key, int> ids;
    ids[KeyOf(start_out)] = 0;
    std::vector<Subset> subsets{start_out};
    std::vector<double> fwd{0.0};
    std::vector<char> expanded{0};
    using Item = std::pair<double, int>;  // (cost of the best path through, det-state)
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
    queue.emplace(Completion(start_out), 0);
    while (!queue.empty()) {
      auto [f, idx] = queue.top();
      queue.pop();
      if (expanded[idx] || f != fwd[idx] + Completion(subsets[idx])) continue;  // stale
      expanded[idx] = 1;
      Subset full = subsets[idx];
      Closure(&full);
      bool have_final = false;
      Elem best_final;
      std::map<int, Subset> groups;
      for (const auto &[s, e] : full) {
        if (lat_.is_final[s]) {
          Elem fin{e.g + lat_.fg[s], e.a + lat_.fa[s], e.t};
          if (!have_final || Better(fin, best_final)) {
            best_final = fin;
            have_final = true;
          }
        }
        for (const Arc &arc : lat_.arcs[s]) {
          if (!arc.word) continue;
          Elem x = Extend(e, arc);
          Subset &grp = groups[arc.word];
          auto it = grp.find(arc.dst);
          if (it == grp.end() || Better(x, it->second)) grp[arc.dst] = std::move(x);
        }
      }
      if (have_final) out->finals[idx] = best_final;
      for (auto &[word, grp] : groups) {  // std::map: words in increasing order
        Closure(&grp);
        Subset dest = OutputsOf(grp);
        if (dest.empty()) continue;
        const Elem *best = nullptr;
        for (const auto &[s, e] : dest)
          if (best == nullptr || Better(e, *best)) best = &e;
        double g0 = best->g, a0 = best->a;
        size_t shortest = std::numeric_limits<size_t>::max();
        for (const auto &[s, e] : dest) shortest = std::min(shortest, e.t.size());
        const std::vector<int> &first = dest.begin()->second.t;
        size_t plen = 0;
        while (plen < shortest) {
          bool same = true;
          for (const auto &[s, e] : dest) same = same && e.t[plen] == first[plen];
          if (!same) break;
          ++plen;
        }
        Subset norm;
        for (const auto &[s, e] : dest)
          norm[s] = Elem{e.g - g0, e.a - a0, std::vector<int>(e.t.begin() + plen, e.t.end())};
        double child_fwd = fwd[idx] + (g0 + a0);
        double child_f = child_fwd + Completion(norm);
        if (child_f > cutoff) continue;  // every path through this arc is outside the beam
        Key k = KeyOf(norm);
        auto it = ids.find(k);
        int dst;
        if (it == ids.end()) {
          dst = static_cast<int>(out->arcs.size());
          ids.emplace(std::move(k), dst);
          out->arcs.emplace_back();
          subsets.push_back(std::move(norm));
          fwd.push_back(child_fwd);
          expanded.push_back(0);
          queue.emplace(child_f, dst);
        } else {
          dst = it->second;
          if (!expanded[dst] && child_fwd < fwd[dst]) {
            fwd[dst] = child_fwd;
            // the priority from the det-state's stored subset, the staleness check's own
            // expression: `norm` has the same key but may differ from it below kDelta
            queue.emplace(fwd[dst] + Completion(subsets[dst]), dst);
          }
        }
        out->arcs[idx].push_back(CArc{dst, word, g0, a0, std::vector<int>(first.begin(), first.begin() + plen)});
      }
    }
    return true;
  }

 private:
  static Elem Extend(const Elem &e, const Arc &arc) {
    Elem x{e.g + arc.g, e.a + arc.a, e.t};
    if (arc.tid) x.t.push_back(arc.tid);
    return x;
  }

  // Epsilon (word 0) closure in topological order, keeping per state the best element.
  void Closure(Subset *subset) {
    using Item = std::pair<int, int>;  // (rank, state)
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
    for (const auto &kv : *subset) heap.emplace(rank_[kv.first], kv.first);
    ++closure_id_;
    while (!heap.empty()) {
      int s = heap.top().second;
      heap.pop();
      if (done_in_[s] == closure_id_) continue;
      done_in_[s] = closure_id_;
      if (++work_ > max_work_) throw LimitExceeded();
      const Elem e = (*subset)[s];
      for (const Arc &arc : lat_.arcs[s]) {
        if (arc.word) continue;
        Elem x = Extend(e, arc);
        auto it = subset->find(arc.dst);
        if (it == subset->end() || Better(x, it->second)) {
          (*subset)[arc.dst] = std::move(x);
          heap.emplace(rank_[arc.dst], arc.dst);
        }
      }
    }
  }

  // Cost of the best complete path from a det-state's elements (residual + backward cost).
  double Completion(const Subset &subset) const {
    double c = kInf;
    for (const auto &[s, e] : subset) c = std::min(c, (e.g + e.a) + beta_[s]);
    return c;
  }

  Subset OutputsOf(const Subset &subset) const {
    Subset out;
    for (const auto &kv : subset)
      if (is_output_[kv.first]) out.insert(kv);
    return out;
  }

  static Key KeyOf(const Subset &subset) {
    Key k;
    k.reserve(subset.size());
    for (const auto &[s, e] : subset)
      k.emplace_back(s, static_cast<int64_t>(std::nearbyint(e.g / kDelta)),
                     static_cast<int64_t>(std::nearbyint(e.a / kDelta)), e.t);
    return k;
  }

  const Lat &lat_;
  double beam_;
  int64_t max_work_;
  std::vector<double> beta_;
  int64_t work_ = 0;
  std::vector<int> rank_;
  std::vector<char> is_output_;
  std::vector<int64_t> done_in_;  // the closure that last finished each state
  int64_t closure_id_ = 0;
};


// ---------------------------------------------------------------------------- lattice search

// A decoding graph (HCLG: input labels transition-ids, output labels words, tropical weights).
// Arcs are one array of structs, each state's input-epsilon arcs first and its emitting arcs
// after them (each kind in the file's order), so that a frame's expansion and the epsilon
// closure each walk only their own arcs.
struct GArc {
  int ilabel;  // transition-id (0: input epsilon)
  int col;     // column of the likelihood matrix the arc reads (-1: input epsilon)
  int next;
  int olabel;
  float weight;
};

struct Token {
  int state;
  double cost;  // best total (graph + acoustic) cost of a path to it
  bool expanded = false;  // its input-epsilon arcs followed (links made)
};

struct Link {
  int from, to, ilabel, olabel;
  float g, a;
};

// A search's buffers, kept with the graph and reused by its next search (one search at a time
// per graph), so that an utterance does not pay again for growing them.
struct Workspace {
  std::vector<int> tok_of;  // graph state -> its token in the frame being built, or -1
  std::vector<Token> tokens;
  std::vector<Link> links;
  std::vector<int64_t> phase_begin;  // first link of each phase (closure, emitting, ...)
  std::vector<int> cur, next, queue, final_tokens;
  std::vector<double> costs, beta;
  std::vector<int> new_id;
};

struct Graph {
  int start = -1;
  std::vector<float> final_cost;    // +inf: not final
  std::vector<int64_t> arc_begin;   // arcs of state s: [arc_begin[s], arc_begin[s+1])
  std::vector<int64_t> emit_begin;  // its emitting arcs: [emit_begin[s], arc_begin[s+1])
  std::vector<GArc> arcs;
  int max_col = -1;                 // the largest column an arc reads
  int max_col_label = 0;            // a transition-id that reads it
  Workspace ws;
  int num_states() const { return static_cast<int>(final_cost.size()); }

  // Arc columns: transition-id t reads column col_of_label[t] (t < n); without a map, t - 1.
  // False (and *bad_label) for a transition-id the map does not cover.
  bool SetColumns(const int *col_of_label, int n, int *bad_label) {
    max_col = -1;
    for (GArc &a : arcs) {
      if (a.ilabel == 0) continue;
      if (col_of_label) {
        if (a.ilabel >= n || col_of_label[a.ilabel] < 0) {
          *bad_label = a.ilabel;
          return false;
        }
        a.col = col_of_label[a.ilabel];
      } else {
        a.col = a.ilabel - 1;
      }
      if (a.col > max_col) {
        max_col = a.col;
        max_col_label = a.ilabel;
      }
    }
    return true;
  }
};

// Frame-synchronous Viterbi beam search over the graph with max-active pruning that keeps
// every token-to-token link within the beam: a state-level lattice (one lattice state per
// token, one arc per link), as a lattice-generating decoder produces before determinisation.
class Search {
 public:
  Search(Graph *g, const float *mat, int frames, int cols, double beam, int max_active,
         int min_active)
      : g_(*g), w_(g->ws), mat_(mat), frames_(frames), cols_(cols), beam_(beam),
        max_active_(max_active), min_active_(min_active) {
    w_.tok_of.assign(g_.num_states(), -1);
    w_.tokens.clear();
    w_.links.clear();
    w_.phase_begin.clear();
    w_.final_tokens.clear();
  }

  // Returns false when an arc reads a column beyond the matrix (*bad_label set).
  bool Run(int *bad_label) {
    if (g_.max_col >= cols_) {
      *bad_label = g_.max_col_label;
      return false;
    }
    std::vector<int> &cur = w_.cur;  // tokens of the current frame
    std::vector<int> &next = w_.next;
    cur.clear();
    cur.push_back(NewToken(g_.start, 0.0));
    w_.phase_begin.push_back(0);  // phases of links: closure 0, emitting 0->1, closure 1, ...
    Closure(&cur, beam_);  // the start cost is 0
    const GArc *arcs = g_.arcs.data();
    for (int t = 0; t < frames_; ++t) {
      double adaptive_beam = beam_;
      double cutoff = Cutoff(cur, &adaptive_beam);
      for (int tok : cur) w_.tok_of[w_.tokens[tok].state] = -1;
      next.clear();
      w_.phase_begin.push_back(static_cast<int64_t>(w_.links.size()));  // emitting t -> t+1
      double next_cutoff = kInf;
      const float *row = mat_ + static_cast<int64_t>(t) * cols_;
      // As Kaldi's decoders do: a first bound on the next frame's cutoff from the best token's
      // arcs (which tokens are pruned depends on it, as on the beam).
      int best_tok = -1;
      for (int tok : cur)
        if (best_tok < 0 || w_.tokens[tok].cost < w_.tokens[best_tok].cost) best_tok = tok;
      if (best_tok >= 0) {
        int s = w_.tokens[best_tok].state;
        for (int64_t i = g_.emit_begin[s]; i < g_.arc_begin[s + 1]; ++i) {
          double nc = w_.tokens[best_tok].cost + arcs[i].weight - row[arcs[i].col];
          next_cutoff = std::min(next_cutoff, nc + adaptive_beam);
        }
      }
      for (int tok : cur) {
        double c = w_.tokens[tok].cost;
        if (c > cutoff) continue;
        int s = w_.tokens[tok].state;
        for (int64_t i = g_.emit_begin[s], e = g_.arc_begin[s + 1]; i < e; ++i) {
          const GArc &arc = arcs[i];
          float ac = -row[arc.col];
          double nc = c + arc.weight + ac;
          if (nc > next_cutoff) continue;
          if (nc + adaptive_beam < next_cutoff) next_cutoff = nc + adaptive_beam;
          int dt = w_.tok_of[arc.next];
          if (dt < 0) {
            dt = NewToken(arc.next, nc);
            w_.tok_of[arc.next] = dt;
            next.push_back(dt);
          } else if (nc < w_.tokens[dt].cost) {
            w_.tokens[dt].cost = nc;
          }
          w_.links.push_back(Link{tok, dt, arc.ilabel, arc.olabel, arc.weight, ac});
        }
      }
      cur.swap(next);
      if (cur.empty()) break;
      w_.phase_begin.push_back(static_cast<int64_t>(w_.links.size()));  // closure t+1
      Closure(&cur, next_cutoff);
      last_frame_ = t + 1;
    }
    for (int tok : cur) w_.tok_of[w_.tokens[tok].state] = -1;
    w_.final_tokens = cur;
    return true;
  }

  // The lattice within `lattice_beam` of the best path; `*reached_final` says whether a final
  // state was reached at the last frame (if not, every last-frame token is final with cost 0,
  // a partial result). Pruned on the flat token/link arrays: forward costs are the tokens'
  // costs; backward costs come from one pass over the link phases in reverse (closure links of
  // a frame relaxed until they settle). Returns an empty lattice when nothing is left.
  Lat PrunedLattice(double lattice_beam, bool *reached_final) {
    Lat lat;
    *reached_final = false;
    const std::vector<Token> &tokens = w_.tokens;
    const std::vector<Link> &links = w_.links;
    int n = static_cast<int>(tokens.size());
    if (last_frame_ != frames_ || n == 0) return lat;  // every token pruned away
    std::vector<double> &beta = w_.beta;
    beta.assign(n, kInf);
    for (int tok : w_.final_tokens) {
      float f = g_.final_cost[tokens[tok].state];
      if (f != std::numeric_limits<float>::infinity()) {
        beta[tok] = f;
        *reached_final = true;
      }
    }
    if (!*reached_final)
      for (int tok : w_.final_tokens) beta[tok] = 0.0;
    std::vector<double> fin;  // final costs of the last frame's tokens, in final_tokens order
    fin.reserve(w_.final_tokens.size());
    for (int tok : w_.final_tokens) fin.push_back(beta[tok]);
    int64_t end = static_cast<int64_t>(links.size());
    for (int ph = static_cast<int>(w_.phase_begin.size()) - 1; ph >= 0; --ph) {
      int64_t begin = w_.phase_begin[ph];
      bool closure = ph % 2 == 0;
      bool changed = true;
      while (changed) {
        changed = false;
        for (int64_t i = end - 1; i >= begin; --i) {
          const Link &l = links[i];
          double b = (static_cast<double>(l.g) + l.a) + beta[l.to];
          if (b < beta[l.from]) {
            beta[l.from] = b;
            changed = closure;
          }
        }
      }
      end = begin;
    }
    double best = beta[0];
    if (best == kInf) return lat;
    double limit = best + lattice_beam;
    std::vector<int> &new_id = w_.new_id;
    new_id.assign(n, -1);
    int m = 0;
    for (int t = 0; t < n; ++t)
      if (tokens[t].cost + beta[t] <= limit) new_id[t] = m++;
    lat.start = 0;
    lat.arcs.assign(m, {});
    lat.is_final.assign(m, 0);
    lat.fg.assign(m, kInf);
    lat.fa.assign(m, kInf);
    for (const Link &l : links) {
      if (new_id[l.from] < 0 || new_id[l.to] < 0) continue;
      if (tokens[l.from].cost + (static_cast<double>(l.g) + l.a) + beta[l.to] > limit) continue;
      lat.arcs[new_id[l.from]].push_back(Arc{new_id[l.to], l.ilabel, l.olabel, l.g, l.a});
    }
    for (size_t k = 0; k < w_.final_tokens.size(); ++k) {
      int tok = w_.final_tokens[k];
      int id = new_id[tok];
      if (id >= 0 && fin[k] != kInf && tokens[tok].cost + fin[k] <= limit) {
        lat.is_final[id] = 1;
        lat.fg[id] = fin[k];
        lat.fa[id] = 0.0;
      }
    }
    return lat;
  }

 private:
  int NewToken(int state, double cost) {
    w_.tokens.push_back(Token{state, cost, false});
    return static_cast<int>(w_.tokens.size()) - 1;
  }

  // Pruning threshold of a frame's tokens: best + beam, tightened to the max_active-th best
  // cost when there are more tokens (never below the min_active-th). When max_active or
  // min_active sets it, the beam used for the next frame's tokens (*adaptive_beam) is that
  // cutoff's distance from the best plus kBeamDelta, as in Kaldi's decoders (their GetCutoff,
  // beam_delta 0.5); else the beam.
  double Cutoff(const std::vector<int> &toks, double *adaptive_beam) {
    std::vector<double> &costs = w_.costs;
    costs.clear();
    double best = kInf;
    for (int t : toks) {
      costs.push_back(w_.tokens[t].cost);
      best = std::min(best, w_.tokens[t].cost);
    }
    const double beam_cutoff = best + beam_;
    *adaptive_beam = beam_;
    if (max_active_ > 0 && static_cast<int>(costs.size()) > max_active_) {
      std::nth_element(costs.begin(), costs.begin() + max_active_, costs.end());
      if (costs[max_active_] < beam_cutoff) {
        *adaptive_beam = costs[max_active_] - best + kBeamDelta;
        return costs[max_active_];
      }
    }
    // min_active: with no more tokens than that, every token is kept and the next frame is not
    // beam-pruned at all (an infinite cutoff), as in Kaldi's decoders.
    double min_active_cutoff = kInf;
    if (static_cast<int>(costs.size()) > min_active_) {
      if (min_active_ <= 0) {
        min_active_cutoff = best;
      } else {
        std::nth_element(costs.begin(), costs.begin() + min_active_, costs.end());
        min_active_cutoff = costs[min_active_];
      }
    }
    if (min_active_cutoff > beam_cutoff) {
      *adaptive_beam = min_active_cutoff - best + kBeamDelta;
      return min_active_cutoff;
    }
    return beam_cutoff;
  }

  // Follow input-epsilon arcs (words, no frame) within the frame: relaxation with a queue,
  // tokens whose cost improves are expanded again.
  void Closure(std::vector<int> *toks, double cutoff) {
    for (int tok : *toks) w_.tok_of[w_.tokens[tok].state] = tok;
    std::vector<int> &queue = w_.queue;
    queue.assign(toks->begin(), toks->end());
    const GArc *arcs = g_.arcs.data();
    while (!queue.empty()) {
      int tok = queue.back();
      queue.pop_back();
      double c = w_.tokens[tok].cost;
      if (c > cutoff) continue;
      // A token expanded again (its cost improved) passes the cost on; its links exist.
      bool expanded = w_.tokens[tok].expanded;
      w_.tokens[tok].expanded = true;
      int s = w_.tokens[tok].state;
      for (int64_t i = g_.arc_begin[s], e = g_.emit_begin[s]; i < e; ++i) {
        const GArc &arc = arcs[i];
        double nc = c + arc.weight;
        if (nc > cutoff) continue;
        int dt = w_.tok_of[arc.next];
        if (dt < 0) {
          dt = NewToken(arc.next, nc);
          w_.tok_of[arc.next] = dt;
          toks->push_back(dt);
          queue.push_back(dt);
        } else if (nc < w_.tokens[dt].cost) {
          w_.tokens[dt].cost = nc;
          queue.push_back(dt);
        }
        if (!expanded) w_.links.push_back(Link{tok, dt, 0, arc.olabel, arc.weight, 0.0f});
      }
    }
  }

  const Graph &g_;
  Workspace &w_;
  const float *mat_;
  int frames_, cols_;
  double beam_;
  int max_active_, min_active_;
  int last_frame_ = 0;
};

void CopyError(const std::string &msg, char *err, int errlen) {
  if (err == nullptr || errlen <= 0) return;
  std::strncpy(err, msg.c_str(), errlen - 1);
  err[errlen - 1] = '\0';
}

struct FstHeader {
  int32_t flags = 0;
  int64_t start = -1, nstates = 0;
};

// OpenFst's binary header of a VectorFst of the given arc type; false (and a message) if not.
bool ReadFstHeader(Reader *r, const std::string &arc_type, FstHeader *h, char *err, int errlen) {
  if (r->get<int32_t>() != kFstMagic) {
    CopyError("not an OpenFst binary FST", err, errlen);
    return false;
  }
  std::string fst_type = r->str(), arcs = r->str();
  if (!r->ok || fst_type != "vector" || arcs != arc_type) {
    CopyError("expected a 'vector' FST of arc type '" + arc_type + "', got '" + fst_type +
                  "' / '" + arcs + "'",
              err, errlen);
    return false;
  }
  r->get<int32_t>();  // version
  h->flags = r->get<int32_t>();
  r->get<uint64_t>();  // properties
  h->start = r->get<int64_t>();
  h->nstates = r->get<int64_t>();
  r->get<int64_t>();  // number of arcs
  if (!r->ok || h->nstates < 0 || h->start >= h->nstates) {
    CopyError("bad FST header", err, errlen);
    return false;
  }
  if ((h->flags & 3) != 0) {
    CopyError("FSTs with symbol tables are not supported", err, errlen);
    return false;
  }
  return true;
}

}  // namespace

extern "C" {

// A state-level lattice from its OpenFst binary form; nullptr (and a message) on bad input.
void *latdet_parse(const char *data, long len, char *err, int errlen) {
  Reader r{data, data + len};
  FstHeader h;
  if (!ReadFstHeader(&r, "lattice4", &h, err, errlen)) return nullptr;
  int64_t start = h.start, nstates = h.nstates;
  auto *lat = new Lat();
  lat->start = start < 0 ? 0 : static_cast<int>(start);
  lat->arcs.resize(nstates);
  lat->is_final.assign(nstates, 0);
  lat->fg.assign(nstates, kInf);
  lat->fa.assign(nstates, kInf);
  for (int64_t s = 0; s < nstates && r.ok; ++s) {
    float g = r.get<float>(), a = r.get<float>();
    if (!(std::isinf(g) && g > 0)) {
      lat->is_final[s] = 1;
      lat->fg[s] = g;
      lat->fa[s] = a;
    }
    int64_t narcs = r.get<int64_t>();
    if (!r.ok || narcs < 0) break;
    lat->arcs[s].reserve(narcs);
    for (int64_t i = 0; i < narcs && r.ok; ++i) {
      int32_t il = r.get<int32_t>(), ol = r.get<int32_t>();
      float ag = r.get<float>(), aa = r.get<float>();
      int32_t d = r.get<int32_t>();
      if (d < 0 || d >= nstates) r.ok = false;
      lat->arcs[s].push_back(Arc{d, il, ol, ag, aa});
    }
  }
  if (!r.ok) {
    delete lat;
    CopyError("truncated or corrupt lattice", err, errlen);
    return nullptr;
  }
  return lat;
}

void latdet_free_lattice(void *lat) { delete static_cast<Lat *>(lat); }

// A decoding graph from its OpenFst binary form (VectorFst, arc type "standard"); nullptr and a
// message on bad input.
void *latdet_graph_parse(const char *data, long len, char *err, int errlen) {
  Reader r{data, data + len};
  FstHeader h;
  if (!ReadFstHeader(&r, "standard", &h, err, errlen)) return nullptr;
  int64_t start = h.start, nstates = h.nstates;
  if (nstates <= 0 || start < 0 || start >= nstates) {
    CopyError("empty graph or bad start state", err, errlen);
    return nullptr;
  }
  auto *g = new Graph();
  g->start = static_cast<int>(start);
  g->final_cost.resize(nstates);
  g->arc_begin.assign(nstates + 1, 0);
  g->emit_begin.assign(nstates, 0);
  std::vector<GArc> emitting;  // the state's emitting arcs, placed after its epsilon arcs
  for (int64_t s = 0; s < nstates && r.ok; ++s) {
    g->final_cost[s] = r.get<float>();
    int64_t narcs = r.get<int64_t>();
    if (!r.ok || narcs < 0) {
      r.ok = false;
      break;
    }
    emitting.clear();
    for (int64_t i = 0; i < narcs && r.ok; ++i) {
      int32_t il = r.get<int32_t>(), ol = r.get<int32_t>();
      float w = r.get<float>();
      int32_t d = r.get<int32_t>();
      if (d < 0 || d >= nstates || il < 0) r.ok = false;
      GArc arc{il, -1, d, ol, w};
      if (il == 0)
        g->arcs.push_back(arc);
      else
        emitting.push_back(arc);
    }
    g->emit_begin[s] = static_cast<int64_t>(g->arcs.size());
    g->arcs.insert(g->arcs.end(), emitting.begin(), emitting.end());
    g->arc_begin[s + 1] = static_cast<int64_t>(g->arcs.size());
  }
  if (!r.ok) {
    delete g;
    CopyError("truncated or corrupt graph", err, errlen);
    return nullptr;
  }
  int no_bad_label = 0;
  g->SetColumns(nullptr, 0, &no_bad_label);  // transition-id t reads column t - 1 until mapped
  return g;
}

// Columns of the likelihood matrices that later searches of the graph get: transition-id t
// reads column col_of_label[t] (t < n; e.g. its pdf, so that the matrix is frames x pdfs).
// 0 and *bad_label when an arc's transition-id is not covered (>= n or a negative column).
int latdet_graph_set_columns(void *graph, const int *col_of_label, int n, int *bad_label) {
  return static_cast<Graph *>(graph)->SetColumns(col_of_label, n, bad_label) ? 1 : 0;
}

void latdet_graph_free(void *g) { delete static_cast<Graph *>(g); }

// Search `mat` (frames x cols, row-major, scaled log-likelihoods; column j = transition-id j+1,
// or as latdet_graph_set_columns mapped them) through the graph: the raw state-level lattice
// pruned to `lattice_beam` (free with latdet_free_lattice), or nullptr.
// status: 0 a final state reached, 1 no final state (every last-frame token made final with
// cost 0, a partial result), 2 every token pruned before the last frame, 3 a transition-id of
// the graph that reads a column beyond the matrix (*bad_label).
void *latdet_search(void *graph, const float *mat, int frames, int cols, double beam,
                    int max_active, int min_active, double lattice_beam, int *status,
                    int *bad_label) {
  Search search(static_cast<Graph *>(graph), mat, frames, cols, beam, max_active, min_active);
  if (!search.Run(bad_label)) {
    *status = 3;
    return nullptr;
  }
  bool reached_final = false;
  Lat lat = search.PrunedLattice(lattice_beam, &reached_final);
  bool any_final = false;
  for (char f : lat.is_final) any_final = any_final || f;
  if (!any_final) {
    *status = 2;
    return nullptr;
  }
  *status = reached_final ? 0 : 1;
  return new Lat(std::move(lat));
}


// Best path cost (graph + acoustic as stored); +inf when no final state is reachable, NaN on
// a cycle.
double latdet_best_cost(void *handle) {
  const Lat &lat = *static_cast<Lat *>(handle);
  if (lat.num_states() == 0) return kInf;
  bool cyclic;
  std::vector<int> order = TopoOrder(lat.arcs, lat.start, &cyclic);
  if (cyclic) return std::nan("");
  std::vector<double> alpha(lat.num_states(), kInf);
  alpha[lat.start] = 0.0;
  for (int s : order)
    for (const Arc &arc : lat.arcs[s]) alpha[arc.dst] = std::min(alpha[arc.dst], alpha[s] + (arc.g + arc.a));
  double best = kInf;
  for (int s = 0; s < lat.num_states(); ++s)
    if (lat.is_final[s]) best = std::min(best, alpha[s] + lat.fg[s] + lat.fa[s]);
  return best;
}

// Prune at `beam`, determinise, prune the result at `beam`, multiply acoustic costs by
// `acoustic_factor`. status: 0 done, 1 more than max_work closure steps, 2 cycle.
void *latdet_determinize(void *handle, double beam, long max_work, double acoustic_factor,
                         int *status) {
  const Lat &lat = *static_cast<Lat *>(handle);
  Lat pruned;
  CLat det;
  if (!Prune(lat, beam, &pruned)) {
    *status = 2;
    return nullptr;
  }
  try {
    Determinizer d(pruned, beam, max_work);
    if (!d.Run(&det)) {
      *status = 2;
      return nullptr;
    }
  } catch (const LimitExceeded &) {
    *status = 1;
    return nullptr;
  }
  auto *out = new CLat();
  if (!Prune(det, beam, out)) {
    delete out;
    *status = 2;
    return nullptr;
  }
  for (auto &arcs : out->arcs)
    for (CArc &arc : arcs) arc.a *= acoustic_factor;
  for (auto &kv : out->finals) kv.second.a *= acoustic_factor;
  *status = 0;
  return out;
}

void latdet_free_compact(void *clat) { delete static_cast<CLat *>(clat); }

// sizes[0..3] = states, start, arcs, finals of a state-level lattice.
void latdet_lattice_sizes(void *handle, long *sizes) {
  const Lat &lat = *static_cast<Lat *>(handle);
  long arcs = 0, finals = 0;
  for (const auto &v : lat.arcs) arcs += static_cast<long>(v.size());
  for (char f : lat.is_final) finals += f ? 1 : 0;
  sizes[0] = lat.num_states();
  sizes[1] = lat.start;
  sizes[2] = arcs;
  sizes[3] = finals;
}

// Arcs in state order (src, dst, ilabel = transition-id, olabel = word, graph and acoustic
// cost), then the final states and their costs.
void latdet_lattice_export(void *handle, int *arc_src, int *arc_dst, int *arc_il, int *arc_ol,
                           double *arc_g, double *arc_a, int *fin_state, double *fin_g,
                           double *fin_a) {
  const Lat &lat = *static_cast<Lat *>(handle);
  long i = 0, j = 0;
  for (int s = 0; s < lat.num_states(); ++s) {
    for (const Arc &a : lat.arcs[s]) {
      arc_src[i] = s;
      arc_dst[i] = a.dst;
      arc_il[i] = a.tid;
      arc_ol[i] = a.word;
      arc_g[i] = a.g;
      arc_a[i] = a.a;
      ++i;
    }
    if (lat.is_final[s]) {
      fin_state[j] = s;
      fin_g[j] = lat.fg[s];
      fin_a[j] = lat.fa[s];
      ++j;
    }
  }
}

// sizes[0..4] = states, start, arcs, finals, transition-ids on arcs and finals.
void latdet_compact_sizes(void *handle, long *sizes) {
  const CLat &c = *static_cast<CLat *>(handle);
  long arcs = 0, tids = 0;
  for (const auto &v : c.arcs) {
    arcs += static_cast<long>(v.size());
    for (const CArc &a : v) tids += static_cast<long>(a.t.size());
  }
  for (const auto &kv : c.finals) tids += static_cast<long>(kv.second.t.size());
  sizes[0] = c.num_states();
  sizes[1] = c.start;
  sizes[2] = arcs;
  sizes[3] = static_cast<long>(c.finals.size());
  sizes[4] = tids;
}

// Arcs in state order (arc_src, arc_dst, arc_word, arc_g, arc_a; their strings are
// tids[tid_off[i]:tid_off[i+1]]), then finals (fin_state, fin_g, fin_a; strings after the arcs'
// at index arcs + j). tid_off has arcs + finals + 1 entries.
void latdet_compact_export(void *handle, int *arc_src, int *arc_dst, int *arc_word, double *arc_g,
                           double *arc_a, int *fin_state, double *fin_g, double *fin_a,
                           long *tid_off, int *tids) {
  const CLat &c = *static_cast<CLat *>(handle);
  long i = 0, t = 0;
  tid_off[0] = 0;
  for (int s = 0; s < c.num_states(); ++s)
    for (const CArc &a : c.arcs[s]) {
      arc_src[i] = s;
      arc_dst[i] = a.dst;
      arc_word[i] = a.word;
      arc_g[i] = a.g;
      arc_a[i] = a.a;
      for (int x : a.t) tids[t++] = x;
      tid_off[++i] = t;
    }
  long j = 0;
  for (const auto &[s, e] : c.finals) {
    fin_state[j] = s;
    fin_g[j] = e.g;
    fin_a[j] = e.a;
    for (int x : e.t) tids[t++] = x;
    tid_off[i + (++j)] = t;
  }
}

// Levels of an acyclic lattice state graph for the sequence objectives (pykd/seq/lattice_graph.py):
// arcs (src[i], dst[i]); emit[i] != 0 if arc i consumes a frame. A state is live if it lies on a
// path from `start` to a final state (is_final[s] != 0). For the live states: level = longest path
// from the start in arcs, time = number of emitting arcs before the state (every path must agree);
// dead states get level -1. Returns 0; 1 if no final state is reachable; 2 if the live part has a
// cycle; 3 if a state is reached after different numbers of frames (info = state, t1, t2).
long latdet_graph_levels(long n, long m, const long *src, const long *dst, const char *emit,
                         long start, const char *is_final, long *level, long *time, long *info) {
  std::vector<long> out_off(n + 1, 0), in_off(n + 1, 0), out_arc(m), in_arc(m);
  for (long i = 0; i < m; ++i) {
    ++out_off[src[i] + 1];
    ++in_off[dst[i] + 1];
  }
  for (long s = 0; s < n; ++s) {
    out_off[s + 1] += out_off[s];
    in_off[s + 1] += in_off[s];
  }
  {
    std::vector<long> o(out_off.begin(), out_off.end() - 1), p(in_off.begin(), in_off.end() - 1);
    for (long i = 0; i < m; ++i) {
      out_arc[o[src[i]]++] = i;
      in_arc[p[dst[i]]++] = i;
    }
  }
  // forward reach from the start, backward reach from the finals
  std::vector<char> fwd(n, 0), bwd(n, 0);
  std::vector<long> stack{start};
  fwd[start] = 1;
  while (!stack.empty()) {
    long s = stack.back();
    stack.pop_back();
    for (long k = out_off[s]; k < out_off[s + 1]; ++k) {
      long d = dst[out_arc[k]];
      if (!fwd[d]) fwd[d] = 1, stack.push_back(d);
    }
  }
  for (long s = 0; s < n; ++s)
    if (is_final[s] && fwd[s]) bwd[s] = 1, stack.push_back(s);
  if (stack.empty()) return 1;
  while (!stack.empty()) {
    long s = stack.back();
    stack.pop_back();
    for (long k = in_off[s]; k < in_off[s + 1]; ++k) {
      long a = in_arc[k], p = src[a];
      if (fwd[p] && !bwd[p]) bwd[p] = 1, stack.push_back(p);
    }
  }
  // Kahn's algorithm over the live arcs: level = longest path, time = frames so far
  std::vector<long> indeg(n, 0), order;
  long live = 0;
  for (long s = 0; s < n; ++s) {
    level[s] = -1;
    time[s] = -1;
    live += bwd[s];
  }
  for (long i = 0; i < m; ++i)
    if (bwd[src[i]] && bwd[dst[i]]) ++indeg[dst[i]];
  if (indeg[start]) return 2;
  level[start] = 0;
  time[start] = 0;
  order.reserve(live);
  order.push_back(start);
  for (size_t q = 0; q < order.size(); ++q) {
    long s = order[q];
    for (long k = out_off[s]; k < out_off[s + 1]; ++k) {
      long a = out_arc[k], d = dst[a];
      if (!bwd[d]) continue;
      long t = time[s] + (emit[a] ? 1 : 0);
      if (time[d] < 0) {
        time[d] = t;
      } else if (time[d] != t) {
        info[0] = d, info[1] = std::min(time[d], t), info[2] = std::max(time[d], t);
        return 3;
      }
      level[d] = std::max(level[d], level[s] + 1);
      if (--indeg[d] == 0) order.push_back(d);
    }
  }
  return static_cast<long>(order.size()) == live ? 0 : 2;
}

}  // extern "C"
