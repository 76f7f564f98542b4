import { describe, expect, it } from 'vitest';
import { POLICY_INVALID, POLICY_UNSUPPORTED, PolicyInputError } from '../../../agent/policy/errors.js';
import { MAX_POLICY_FILE_BYTES, parsePolicies } from '../../../agent/policy/policy-file.js';
import { np } from './policy-fixture.js';

/** Runs `run`, asserts a PolicyInputError and returns it. */
function inputError(run: () => unknown): PolicyInputError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyInputError);
    const e = err as PolicyInputError;
    expect(e.message).toMatch(/^Invalid NetworkPolicy in "[^"]*" document \d+/);
    expect(e.message).not.toMatch(/\.$/);
    return e;
  }
  throw new Error('Expected a PolicyInputError, nothing was thrown');
}

const parse = (text: string) => parsePolicies(text, { source: 'p.yaml' });
const spec = (s: string) => np('p', 'shop', s);

describe('parsePolicies() reads standard NetworkPolicy input', () => {
  it('reads several YAML documents and skips empty ones', () => {
    const out = parse(`---\n${np('a', 'shop', 'podSelector: {}')}\n---\n${np('b', 'ops', 'podSelector: {}')}---\n`);
    expect(out.map((p) => `${p.namespace}/${p.name}`)).toEqual(['shop/a', 'ops/b']);
    // np() opens each document with its own "---": documents 1 and 3 are empty.
    expect(out[1]!.location).toEqual({ source: 'p.yaml', document: 4, policy: 'ops/b' });
  });

  it('reads JSON, kind List and kind NetworkPolicyList', () => {
    const obj = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'j', namespace: 'shop' }, spec: { podSelector: {} } };
    expect(parse(JSON.stringify(obj))[0]!.name).toBe('j');
    const list = { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: [obj, { ...obj, metadata: { name: 'k', namespace: 'shop' } }] };
    const out = parse(JSON.stringify(list));
    expect(out.map((p) => p.name)).toEqual(['j', 'k']);
    expect(out[1]!.location).toEqual({ source: 'p.yaml', document: 1, item: 1, policy: 'shop/k' });
    expect(parse(JSON.stringify({ ...list, apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicyList' })).length).toBe(2);
  });

  it('accepts what kubectl get -o yaml writes (server-set metadata) and defaults the namespace', () => {
    const text = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: x
  uid: 0b5f7c1e-1111-2222-3333-444455556666
  resourceVersion: "123"
  generation: 1
  creationTimestamp: "2026-01-01T00:00:00Z"
  labels: {app.kubernetes.io/name: shop}
spec:
  podSelector: {}
`;
    expect(parse(text)[0]!.namespace).toBe('default');
    expect(parsePolicies(text, { defaultNamespace: 'shop' })[0]!.namespace).toBe('shop');
  });

  it('applies policyTypes defaulting: Ingress always, Egress only with egress rules', () => {
    expect(parse(spec('podSelector: {}'))[0]).toMatchObject({ ingress: [], egress: null });
    expect(parse(spec('podSelector: {}\negress: []'))[0]).toMatchObject({ ingress: [], egress: null });
    expect(parse(spec('podSelector: {}\negress: [{}]'))[0]).toMatchObject({ ingress: [], egress: [{ peers: null, ports: [], requirement: 0 }] });
    expect(parse(spec('podSelector: {}\npolicyTypes: []\negress: [{}]'))[0]).toMatchObject({ ingress: [] });
    expect(parse(spec('podSelector: {}\npolicyTypes: [Egress]'))[0]).toMatchObject({ ingress: null, egress: [] });
  });

  it('treats an empty from list like an absent one (every peer) and a null podSelector as {}', () => {
    const p = parse(spec('podSelector:\ningress:\n- from: []\n  ports: []'))[0]!;
    expect(p.podSelector.requirements).toEqual([]);
    expect(p.ingress).toEqual([{ peers: null, ports: [], requirement: 0 }]);
  });

  it('reads ipBlocks of the whole address space with excepts, IPv4 and IPv6', () => {
    const p = parse(spec('podSelector: {}\negress:\n- to:\n  - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}\n  - ipBlock: {cidr: "::/0", except: ["fd00::/8"]}'))[0]!;
    expect(p.egress![0]!.peers).toEqual([
      { kind: 'ipBlock', cidr: { addr: '0.0.0.0', prefixLen: 0, family: 4 }, except: [{ addr: '10.0.0.0', prefixLen: 8, family: 4 }, { addr: '192.168.0.0', prefixLen: 16, family: 4 }] },
      { kind: 'ipBlock', cidr: { addr: '::', prefixLen: 0, family: 6 }, except: [{ addr: 'fd00::', prefixLen: 8, family: 6 }] },
    ]);
  });

  it('canonicalizes selectors so that equal selectors share one key', () => {
    const [a, b] = parse(
      np('a', 'shop', 'podSelector: {matchLabels: {b: "2", a: "1"}, matchExpressions: [{key: c, operator: In, values: [z, x, x]}]}') +
        np('b', 'shop', 'podSelector: {matchExpressions: [{key: c, operator: In, values: [x, z]}], matchLabels: {a: "1", b: "2"}}'),
    );
    expect(a!.podSelector.key).toBe(b!.podSelector.key);
  });
});

describe('parsePolicies() refuses bad input with the document, the field and the fix', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['unknown top-level field', 'podSelector: {}\nfoo: 1', 'spec.foo', /unknown field "foo".*known fields here: "podSelector", "policyTypes", "ingress", "egress"/],
    ['misspelt selector field', 'podSelector: {matchLabel: {a: b}}', 'spec.podSelector.matchLabel', /unknown field/],
    ['missing podSelector', 'policyTypes: [Ingress]', 'spec.podSelector', /is required: use "podSelector: \{\}"/],
    ['bad policy type', 'podSelector: {}\npolicyTypes: [ingress]', 'spec.policyTypes[0]', /not "Ingress" or "Egress"/],
    ['duplicate policy type', 'podSelector: {}\npolicyTypes: [Ingress, Ingress]', 'spec.policyTypes[1]', /listed twice/],
    ['three policy types', 'podSelector: {}\npolicyTypes: [Ingress, Egress, Ingress]', 'spec.policyTypes', /has 3 entries: keep at most 2/],
    ['rules outside policyTypes', 'podSelector: {}\npolicyTypes: [Egress]\ningress: [{}]', 'spec.ingress', /does not list "Ingress"/],
    ['empty peer', 'podSelector: {}\ningress:\n- from: [{}]', 'spec.ingress[0].from[0]', /peer is empty/],
    ['ipBlock with a selector', 'podSelector: {}\ningress:\n- from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]', 'spec.ingress[0].from[0]', /either an ipBlock or/],
    ['ipBlock without prefix', 'podSelector: {}\negress:\n- to: [{ipBlock: {cidr: 10.0.0.1}}]', 'spec.egress[0].to[0].ipBlock.cidr', /add a prefix length/],
    ['ipBlock with host bits', 'podSelector: {}\negress:\n- to: [{ipBlock: {cidr: 10.1.2.3/8}}]', 'spec.egress[0].to[0].ipBlock.cidr', /host bits are set; use "10.0.0.0\/8"/],
    ['except outside cidr', 'podSelector: {}\negress:\n- to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]', 'spec.egress[0].to[0].ipBlock.except[0]', /not strictly inside/],
    ['except equal to cidr', 'podSelector: {}\negress:\n- to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]', 'spec.egress[0].to[0].ipBlock.except[0]', /not strictly inside/],
    ['except of the other family', 'podSelector: {}\negress:\n- to: [{ipBlock: {cidr: "fd00::/8", except: [10.0.0.0/16]}}]', 'spec.egress[0].to[0].ipBlock.except[0]', /same family/],
    ['bad protocol', 'podSelector: {}\ningress:\n- ports: [{protocol: tcp, port: 80}]', 'spec.ingress[0].ports[0].protocol', /not one of TCP, UDP, SCTP/],
    ['port zero', 'podSelector: {}\ningress:\n- ports: [{port: 0}]', 'spec.ingress[0].ports[0].port', /integer from 1 to 65535/],
    ['port too large', 'podSelector: {}\ningress:\n- ports: [{port: 65536}]', 'spec.ingress[0].ports[0].port', /integer from 1 to 65535/],
    ['fractional port', 'podSelector: {}\ningress:\n- ports: [{port: 80.5}]', 'spec.ingress[0].ports[0].port', /integer/],
    ['quoted numeric port', 'podSelector: {}\ningress:\n- ports: [{port: "80"}]', 'spec.ingress[0].ports[0].port', /without quotes/],
    ['endPort without port', 'podSelector: {}\ningress:\n- ports: [{endPort: 90}]', 'spec.ingress[0].ports[0].endPort', /needs a numeric port/],
    ['endPort below port', 'podSelector: {}\ningress:\n- ports: [{port: 90, endPort: 80}]', 'spec.ingress[0].ports[0].endPort', /below port 90/],
    ['In without values', 'podSelector: {matchExpressions: [{key: a, operator: In}]}', 'spec.podSelector.matchExpressions[0].values', /needs at least one value/],
    ['Exists with values', 'podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}', 'spec.podSelector.matchExpressions[0].values', /takes no values/],
    ['unknown operator', 'podSelector: {matchExpressions: [{key: a, operator: in, values: [x]}]}', 'spec.podSelector.matchExpressions[0].operator', /not one of In, NotIn/],
    ['bad label key', 'podSelector: {matchLabels: {"-a": b}}', 'spec.podSelector.matchLabels["-a"]', /invalid name/],
    ['bad label value', 'podSelector: {matchLabels: {a: "b c"}}', 'spec.podSelector.matchLabels.a', /invalid value/],
    ['non-string label value', 'podSelector: {matchLabels: {a: 1}}', 'spec.podSelector.matchLabels.a', /expected a string.*quote the value/],
    ['rules not a list', 'podSelector: {}\ningress: {from: []}', 'spec.ingress', /expected a list, got a mapping/],
  ];
  it.each(cases)('%s', (_name, body, path, message) => {
    const e = inputError(() => parse(spec(body)));
    expect(e.code).toBe(POLICY_INVALID);
    expect(e.path).toBe(path);
    expect(e.location).toMatchObject({ source: 'p.yaml', document: 1, policy: 'shop/p' });
    expect(e.message).toMatch(message);
    expect(e.message).toContain(`field "${path}"`);
  });

  it('refuses named ports and selectors on volatile labels as unsupported', () => {
    const named = inputError(() => parse(spec('podSelector: {}\ningress:\n- ports: [{port: http}]')));
    expect(named.code).toBe(POLICY_UNSUPPORTED);
    expect(named.message).toMatch(/named port "http" is not supported.*write the port number/);
    const volatile = inputError(() => parse(spec('podSelector: {matchLabels: {pod-template-hash: abc}}')));
    expect(volatile.code).toBe(POLICY_UNSUPPORTED);
    expect(volatile.path).toBe('spec.podSelector.matchLabels["pod-template-hash"]');
  });

  it('checks apiVersion, kind, metadata and duplicates', () => {
    expect(inputError(() => parse(np('a', 'shop', 'podSelector: {}').replace('networking.k8s.io/v1', 'networking.k8s.io/v1beta1'))).path).toBe('apiVersion');
    expect(inputError(() => parse(np('a', 'shop', 'podSelector: {}').replace('kind: NetworkPolicy', 'kind: Pod'))).path).toBe('kind');
    expect(inputError(() => parse(np('A_b', 'shop', 'podSelector: {}'))).path).toBe('metadata.name');
    expect(inputError(() => parse(np('a', 'Shop', 'podSelector: {}'))).path).toBe('metadata.namespace');
    expect(inputError(() => parse(np('a', 'shop', 'podSelector: {}').replace('metadata:', 'metadata:\n  bogus: 1'))).path).toBe('metadata.bogus');
    const dup = inputError(() => parse(np('a', 'shop', 'podSelector: {}') + np('a', 'shop', 'podSelector: {}')));
    expect(dup.message).toMatch(/"shop\/a" is defined twice \(first in "p.yaml" document 1/);
    expect(dup.location.document).toBe(2);
    const inList = inputError(() => parse(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ kind: 'Pod' }] })));
    expect(inList.path).toBe('items[0].kind');
    expect(inputError(() => parse(JSON.stringify({ apiVersion: 'v2', kind: 'List', items: [] }))).path).toBe('apiVersion');
  });

  it('refuses YAML syntax errors, duplicate keys, unknown tags and non-objects', () => {
    expect(inputError(() => parse('a: [1, 2')).message).toMatch(/YAML syntax error: .* at line 1, column 9; fix the YAML there$/);
    expect(inputError(() => parse(spec('podSelector: {}\npodSelector: {}'))).message).toMatch(/YAML syntax error.*unique/i);
    expect(inputError(() => parse(spec('podSelector: !!js/function "x"'))).message).toMatch(/YAML syntax error/);
    expect(inputError(() => parse('- 1\n- 2')).message).toMatch(/expected a mapping/);
    expect(inputError(() => parse('"just text"')).message).toMatch(/expected a mapping/);
    expect(inputError(() => parse('')).message).toMatch(/contains no NetworkPolicy/);
    expect(inputError(() => parse('---\n---\n')).message).toMatch(/contains no NetworkPolicy/);
  });

  it('bounds size, depth, node count and alias expansion', () => {
    expect(inputError(() => parse('#'.repeat(MAX_POLICY_FILE_BYTES + 1))).message).toMatch(/keep a policy file under/);
    const deep = `${'['.repeat(40)}${']'.repeat(40)}`;
    expect(inputError(() => parse(`a: ${deep}`)).message).toMatch(/nested deeper than/);
    // Billion laughs: each level doubles; aliases are capped before expansion.
    let bomb = 'a0: &a0 [x, x]\n';
    for (let i = 1; i < 30; i++) bomb += `a${i}: &a${i} [*a${i - 1}, *a${i - 1}]\n`;
    expect(inputError(() => parse(bomb)).message).toMatch(/Excessive alias count.*remove YAML aliases/);
    const wide = `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  podSelector: {}\n  ingress:\n${'  - {}\n'.repeat(300)}`;
    expect(inputError(() => parse(wide)).message).toMatch(/has 300 entries: keep at most 256/);
    const many = Array.from({ length: 1001 }, () => '---\n{}\n').join('');
    expect(inputError(() => parse(many)).message).toMatch(/documents: keep at most 1000/);
  });

  it('refuses unquoted values that YAML 1.1 (Kubernetes) and 1.2 read differently', () => {
    const octal = inputError(() => parse(spec('podSelector: {}\ningress:\n- ports: [{port: 010}]')));
    expect(octal.message).toMatch(/number "010" at line 10, column \d+ is read differently by Kubernetes \(YAML 1.1\) and YAML 1.2: write it as a plain decimal \(10\) or quote it/);
    expect(inputError(() => parse(spec('podSelector: {}\ningress:\n- ports: [{port: 0x50}]'))).message).toMatch(/number "0x50"/);
    const yes = inputError(() => parse(spec('podSelector: {matchLabels: {enabled: yes}}')));
    expect(yes.message).toMatch(/value "yes" at line \d+, column \d+ is read differently.*quote it \("yes"\)/);
    expect(inputError(() => parse(spec('podSelector: {matchLabels: {on: "x"}}'))).message).toMatch(/key "on"/);
    expect(inputError(() => parse(spec('podSelector: {matchLabels: {date: 2026-01-31}}'))).message).toMatch(/value "2026-01-31" at line/);
    // Quoted, they are what they say.
    expect(parse(spec('podSelector: {matchLabels: {enabled: "yes", "on": "x"}}\ningress:\n- ports: [{port: 8080}]'))[0]!.podSelector.requirements.map((q) => q.values[0])).toEqual(['yes', 'x']);
  });

  it('cuts long keys and values in messages', () => {
    const key = 'k'.repeat(100_000);
    const obj = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', namespace: 'shop' }, spec: { podSelector: {}, [key]: 1 } };
    const e = inputError(() => parse(JSON.stringify(obj)));
    expect(e.message.length).toBeLessThan(600);
    expect(e.path).toBe(`spec[${JSON.stringify(`${'k'.repeat(61)}...`)}]`);
    const v = inputError(() => parse(spec(`podSelector: {matchLabels: {a: "${'v'.repeat(100_000)}"}}`)));
    expect(v.message.length).toBeLessThan(600);
  });

  it('never lets "__proto__" keys reach a prototype', () => {
    const e = inputError(() => parse(spec('podSelector: {}\n__proto__: {polluted: true}')));
    expect(e.path).toBe('spec.__proto__');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parsePolicies() on missing parts', () => {
  it('says what is missing', () => {
    const head = 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n';
    const noSpec = inputError(() => parse(`${head}metadata: {name: a}\n`));
    expect(noSpec.path).toBe('spec');
    expect(noSpec.message).toMatch(/expected a mapping, got nothing \(the field is missing\): write it as/);
    expect(inputError(() => parse(`${head}spec: {podSelector: {}}\n`)).path).toBe('metadata');
    expect(inputError(() => parse('kind: NetworkPolicy\n')).message).toMatch(/field "apiVersion": expected "networking.k8s.io\/v1", got nothing/);
    expect(inputError(() => parsePolicies(42 as unknown as string)).message).toMatch(/expected text, got number "42"/);
  });
});
