export default function Home() {
  return (
    <main>
      <h1>Next.js sandbox</h1>
      <p>Edit /blaxel/app/app/page.js and the page reloads.</p>
    </main>
  );
}
