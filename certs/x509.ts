/**
 * The one entry to @peculiar/x509: it resolves its algorithm registry through tsyringe, which
 * needs the Reflect metadata polyfill loaded first. Every module imports X.509 classes from here
 * so the polyfill is in place whatever imports first.
 */
import 'reflect-metadata';

export * from '@peculiar/x509';
