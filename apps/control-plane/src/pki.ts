/**
 * The control plane's PKI: a root CA from mitm-core's CertificateAuthority (kept in --ca-dir), the
 * rule-sync server certificate, sidecar mTLS client certificates (`issueClientLeaf`) and per-sidecar
 * interception intermediates (`issueIntermediate`). All signing happens in mitm-core.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority, isMeshNodeId } from '@httpmesh/mitm-core';
import type { IssuedClientLeaf } from '@httpmesh/mitm-core';
import { CertificateRequestError } from './errors.js';

export interface SidecarBundle {
  nodeId: string;
  /** The sidecar's client certificate (PEM), identity in URI SAN `spiffe://httpmesh/node/<id>` and CN. */
  certPem: string;
  keyPem: string;
  /** CA the sidecar trusts for the control plane's server certificate. */
  caPem: string;
  notAfter: string;
}

export interface InterceptionIntermediate {
  nodeId: string;
  certPem: string;
  keyPem: string;
  /** Intermediate + root, for the sidecar's leaf chains. */
  chainPem: string;
  permittedDomains: readonly string[];
  notAfter: string;
}

const NODE_ID_RULE = 'must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit';

export class ControlPlanePki {
  private constructor(readonly ca: CertificateAuthority) {}

  /** Loads the CA from `dir`, or creates and saves one there (key mode 0600) when the dir has none. */
  static async open(dir: string): Promise<ControlPlanePki> {
    let ca: CertificateAuthority;
    if (existsSync(join(dir, 'ca.crt'))) {
      ca = await CertificateAuthority.loadFromDir(dir);
    } else {
      ca = await CertificateAuthority.create({
        commonName: 'httpmesh control plane CA',
        keyAlgorithm: 'ECDSA-P256',
      });
      await ca.saveToDir(dir);
    }
    return new ControlPlanePki(ca);
  }

  get caPem(): string {
    return this.ca.certPem;
  }

  /** Server certificate for the rule-sync port (serverAuth), for the given host names / addresses. */
  async serverCertificate(hosts: readonly string[]): Promise<{ cert: string; key: string; ca: string }> {
    const leaf = await this.ca.issueLeaf(hosts);
    return { cert: leaf.chainPem, key: leaf.keyPem, ca: this.caPem };
  }

  /**
   * Issues a sidecar's mTLS client certificate bundle. The rule-sync server accepts a sidecar only when its
   * Hello's node id equals the certificate's SPIFFE id.
   * @throws CertificateRequestError for an invalid node id
   */
  async issueSidecarBundle(nodeId: string, validityDays = 30): Promise<SidecarBundle> {
    if (!isMeshNodeId(nodeId)) throw new CertificateRequestError(`node id "${nodeId}" ${NODE_ID_RULE}`);
    let leaf: IssuedClientLeaf;
    try {
      leaf = await this.ca.issueClientLeaf({ nodeId, validityDays });
    } catch (err) {
      throw new CertificateRequestError(
        `cannot issue a client certificate for ${nodeId}: ${(err as Error).message}`,
      );
    }
    return {
      nodeId,
      certPem: leaf.chainPem,
      keyPem: leaf.keyPem,
      caPem: this.caPem,
      notAfter: leaf.notAfter.toISOString(),
    };
  }

  /** A name-constrained intermediate CA for one sidecar's TLS interception (mitm-core issueIntermediate). */
  async issueInterceptionIntermediate(
    nodeId: string,
    permittedDomains: readonly string[],
    validityDays = 30,
  ): Promise<InterceptionIntermediate> {
    if (!isMeshNodeId(nodeId)) throw new CertificateRequestError(`node id "${nodeId}" ${NODE_ID_RULE}`);
    if (permittedDomains.length === 0)
      throw new CertificateRequestError('permittedDomains must list at least one domain');
    let intermediate: CertificateAuthority;
    try {
      intermediate = await this.ca.issueIntermediate({
        permittedDomains,
        validityDays,
        commonName: `httpmesh sidecar ${nodeId}`.slice(0, 64),
      });
    } catch (err) {
      throw new CertificateRequestError(
        `cannot issue an intermediate for ${nodeId}: ${(err as Error).message}`,
      );
    }
    const pem = await intermediate.toPem();
    return {
      nodeId,
      certPem: intermediate.certPem,
      keyPem: pem.keyPem,
      chainPem: [intermediate.certPem, ...intermediate.chainPems].join(''),
      permittedDomains,
      notAfter: intermediate.notAfter.toISOString(),
    };
  }
}
